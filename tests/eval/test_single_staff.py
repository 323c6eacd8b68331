"""The single-staff test set: held-out single-staff movements only, 1-4 measures, deterministic."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from omrgemma.data import testsets
from omrgemma.data.split import HELDOUT_JSON, is_heldout, kern_relpath
from omrgemma.kern.parse import parse
from omrgemma.kern.validate import has_errors, validate

# A 2/4 song of ten measures (hand-written in the style of the Foster song book), with a pickup.
SONG = "**kern\n*clefG2\n*k[]\n*M2/4\n8g\n" + "".join(
    f"={n}\n8e\n8g\n4cc\n" if n % 2 else f"={n}\n4.d\n8f\n" for n in range(1, 11)
) + "==\n*-\n"  # fmt: skip


def _heldout_name(collection: str) -> str:
    return json.loads(HELDOUT_JSON.read_text())["collections"][collection]["heldout"][0]


@pytest.fixture()
def corpus(tmp_path: Path) -> Path:
    """foster-songs with one held-out and one training song; a piano and an unlisted folder."""
    kern = tmp_path / "kern"
    held = kern / _heldout_name("mono/foster-songs")
    held.parent.mkdir(parents=True)
    held.write_text(SONG)
    (held.parent / "not-held-out.krn").write_text(SONG.replace("4cc", "4dd"))
    (kern / "piano" / "mine").mkdir(parents=True)  # test data, but not a single-staff collection
    (kern / "piano" / "mine" / "x.krn").write_text(SONG)
    (kern / "mono" / "mine").mkdir(parents=True)  # a user's folder: not a listed collection
    (kern / "mono" / "mine" / "y.krn").write_text(SONG)
    return tmp_path


def test_the_collections_are_the_single_staff_training_sources():
    from omrgemma.train_run import DATASETS

    assert testsets.SINGLE_STAFF_COLLECTIONS == DATASETS["single"]


def test_only_held_out_movements_of_the_listed_collections(corpus):
    report = testsets.BuildReport()
    systems = testsets.single_staff_systems(corpus, seed=3, report=report)
    held = _heldout_name("mono/foster-songs")
    assert report.movements == 1
    assert {s.id.partition("#")[0] for s in systems} == {held}
    assert {s.collection for s in systems} == {"mono/foster-songs"}
    assert len(systems) == testsets.SINGLE_STAFF_PER_MOVEMENT
    for system in systems:
        doc = parse(system.kern)
        assert doc.spine_types == ("**kern",)
        assert 1 <= len(doc.measures) <= 4
        assert not has_errors(validate(system.kern)), system.id
    indices = [int(s.id.partition("#")[2]) for s in systems]
    assert indices == sorted(set(indices))


def test_the_set_is_deterministic_and_seeded(corpus):
    first = list(testsets.build("single-staff", corpus, seed=3))
    again = list(testsets.build("single-staff", corpus, seed=3))
    assert [(e.id, e.kern) for e in first] == [(e.id, e.kern) for e in again]
    assert all(np.array_equal(a.image, b.image) for a, b in zip(first, again, strict=True))
    other = testsets.single_staff_systems(corpus, seed=4)
    assert [s.kern for s in other] != [e.kern for e in first]
    for example in first:  # one staff per image, clean engraving (greyscale, mostly white)
        assert example.image.dtype == np.uint8 and example.image.ndim == 2
        assert example.image.shape[1] > example.image.shape[0]
        assert (example.image > 200).mean() > 0.8


def test_evaluate_cli_on_the_single_staff_set(corpus):
    from omrgemma.cli.evaluate import command

    result = CliRunner().invoke(command, ["--model", "baseline:empty", "--set", "single-staff",
                                          "--data", str(corpus), "--no-music"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "mono/foster-songs" in result.output and "piano/mine" not in result.output


def test_evaluate_cli_names_the_missing_folder(tmp_path):
    from omrgemma.cli.evaluate import command

    result = CliRunner().invoke(command, ["--model", "baseline:empty", "--set", "single-staff",
                                          "--data", str(tmp_path)])  # fmt: skip
    assert result.exit_code != 0 and "no kern folder" in str(result.exception)


def test_the_common_baseline_comes_from_single_staff_training_songs(corpus):
    from omrgemma.evaluate import load_predictor

    predictor = load_predictor("baseline:common", data=corpus, set_name="single-staff")
    assert "4dd" in predictor.text  # only the training song has it
    assert parse(predictor.text).spine_types == ("**kern",)


def test_the_shared_corpora_give_a_few_hundred_held_out_systems(shared_data):
    systems = testsets.single_staff_systems(shared_data)
    assert 200 <= len(systems) <= 500
    assert systems == testsets.single_staff_systems(shared_data)
    collections = {s.collection for s in systems}
    assert collections <= set(testsets.SINGLE_STAFF_COLLECTIONS) and len(collections) >= 5
    assert all(is_heldout(kern_relpath(s.id.partition("#")[0])) for s in systems)


@pytest.mark.slow
def test_every_shared_single_staff_example_engraves_and_validates(shared_data):
    report = testsets.BuildReport()
    examples = list(testsets.single_staff(shared_data, report=report, workers=2))
    assert not report.render_failures and not report.cut_failures
    assert len(examples) == len(testsets.single_staff_systems(shared_data))
    assert all(not has_errors(validate(e.kern)) for e in examples)


def test_the_cli_offers_every_set():
    from omrgemma.cli.evaluate import SETS

    assert SETS == testsets.SET_NAMES

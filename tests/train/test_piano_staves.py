"""The "piano-staves" dataset: every staff of the piano training snippets, one snippet per staff.

Real movements from ../shared/data/kern (skipped when the corpora are absent): a few piano
training movements for the pool, a held-out one for the guard.
"""

from __future__ import annotations

import json
import shutil

import pytest

from omrgemma.data.kern_examples import build_snippet_pool
from omrgemma.data.split import heldout, test_files, train_files
from omrgemma.errors import UsageError
from omrgemma.kern.parse import parse
from omrgemma.kern.staves import split_staves, staff_tracks
from omrgemma.kern.validate import validate
from omrgemma.train_run import DATASETS

PIANO_STAVES = list(DATASETS["piano-staves"])


def _single_staff(kern: str) -> bool:
    doc = parse(kern)
    return len(staff_tracks(doc)) == 1 and set(doc.spine_types) == {"**kern"}


def test_piano_staves_reads_the_piano_collections():
    assert DATASETS["piano-staves"] == DATASETS["piano"]


def test_the_pool_holds_every_staff_of_the_piano_pool_top_first(shared_data):
    files = train_files(shared_data, PIANO_STAVES)[::150]
    systems = build_snippet_pool(files, measures=(1, 2), cuts=1, seed=0, max_chars=10**6)
    staves = build_snippet_pool(
        files, measures=(1, 2), cuts=1, seed=0, max_chars=10**6, staves=True
    )
    assert len(staves) >= 2 * len(systems) > 100
    assert staves == [staff for system in systems for staff in split_staves(system)]
    assert all(_single_staff(staff) for staff in staves)
    # the upper staff comes first: the lower staff of a piano system is the first spine
    first_system = parse(systems[0])
    assert len(staff_tracks(first_system)) == 2
    assert staves[1].splitlines()[1:3] == [
        "*staff1",
        next(r.fields[0] for r in first_system.records if r.fields[0].startswith("*clef")),
    ]


def test_the_staves_of_valid_systems_are_valid(shared_data):
    files = train_files(shared_data, PIANO_STAVES)[::150]
    for system in build_snippet_pool(files, measures=(1, 2), cuts=1, seed=0):
        if any(p.severity == "error" for p in validate(system)):
            continue
        for staff in split_staves(system):
            assert not [p for p in validate(staff) if p.severity == "error"], staff


def test_the_pool_refuses_held_out_movements(shared_data):
    held = test_files(shared_data, PIANO_STAVES)
    assert held
    with pytest.raises(UsageError, match="held-out"):
        build_snippet_pool(held[:1], measures=(1, 2), cuts=1, seed=0, staves=True)


def test_a_prepared_run_holds_single_staves_from_training_movements_only(shared_data, tmp_path):
    """prepare_run on a corpus of three Joplin rags: two for training, one held out."""
    run = _prepared(tmp_path, {"piano/joplin": _joplin(shared_data)}, "piano-staves")
    pool = [json.loads(line) for line in (run / "pool.jsonl").read_text().splitlines()]
    held = [json.loads(line) for line in (run / "heldout.jsonl").read_text().splitlines()]
    assert len(pool) > 100 and len(held) == 8
    assert all(_single_staff(kern) for kern in pool + held)
    meta = json.loads((run / "run.json").read_text())
    assert meta["train_movements"] == 2 and meta["pool_size"] == len(pool)
    assert meta["data"]["dataset"] == "piano-staves"


def test_a_snippet_whose_spines_the_cutter_broke_is_skipped(tmp_path):
    # Both hands merge their voices on one line with a **dynam spine between them, as in the
    # Polish scores (Sowinski, Fantaisie brillante op. 82, m. 2): dropping that spine leaves four
    # adjacent `*v`, which merge the two staves into one spine.
    movement = tmp_path / "movement.krn"
    movement.write_text(
        "**kern\t**dynam\t**kern\n*clefF4\t*\t*clefG2\n*M2/4\t*\t*M2/4\n*^\t*\t*^\n"
        "4C\t4E\tp\t4c\t4e\n4C\t4E\t.\t4c\t4e\n*v\t*v\t*\t*v\t*v\n=1\t=1\t=1\n"
        "2C\t.\t2c\n=2\t=2\t=2\n*-\t*-\t*-\n"
    )
    options = {"measures": (2, 2), "cuts": 1, "seed": 0, "heldout": True}
    (system,) = build_snippet_pool([movement], **options)
    assert "*v\t*v\t*v\t*v" in system
    assert build_snippet_pool([movement], **options, staves=True) == []


def test_the_staves_dataset_pools_single_and_piano_staves(shared_data, tmp_path):
    """prepare_run with dataset "staves" on two Joplin rags and two Foster songs: one pool of
    single staves from both kinds of music (the tokenizer trained on the same text)."""
    from omrgemma.train_run import STAFF_DATASETS

    assert DATASETS["staves"] == DATASETS["single"] + DATASETS["piano"]
    assert STAFF_DATASETS == {"piano-staves", "staves"}
    sources = {
        "piano/joplin": _joplin(shared_data),
        "mono/foster-songs": train_files(shared_data, ["mono/foster-songs"])[:2],
    }
    run = _prepared(tmp_path, sources, "staves")
    pool = [json.loads(line) for line in (run / "pool.jsonl").read_text().splitlines()]
    assert all(_single_staff(kern) for kern in pool)
    data = tmp_path / "data"
    both = build_snippet_pool(
        train_files(data, list(DATASETS["staves"])), measures=(1, 2), cuts=2, seed=0, staves=True
    )
    assert pool == [kern for kern in both if len(kern) <= 4000]
    for collection in sources:  # each kind of music is in it, songs and piano
        alone = build_snippet_pool(
            train_files(data, [collection]), measures=(1, 2), cuts=1, seed=0, staves=True
        )
        assert 10 < len(alone) < len(pool)
    meta = json.loads((run / "run.json").read_text())
    assert meta["train_movements"] == 4 and meta["data"]["dataset"] == "staves"


def _prepared(tmp_path, sources: dict, dataset: str):
    """A run folder prepared on a corpus holding only `sources` ({collection: kern files})."""
    from omrgemma.train import TrainConfig
    from omrgemma.train_run import SMALL_STAFF, DataSettings, prepare_run

    for collection, paths in sources.items():
        corpus = tmp_path / "data" / "kern" / collection
        corpus.mkdir(parents=True)
        for path in paths:
            shutil.copy(path, corpus / path.name)
    run = tmp_path / "run"
    prepare_run(
        run,
        model=SMALL_STAFF,
        data=DataSettings(dataset=dataset, measures=(1, 2), heldout_examples=8),
        train=TrainConfig(),
        data_dir=tmp_path / "data",
        vocab_size=160,
    )
    return run


def _joplin(shared_data) -> list:
    """Two Joplin training rags and one held-out rag."""
    held_name = heldout("piano/joplin")[0].rpartition("/")[2]
    return [
        *train_files(shared_data, ["piano/joplin"])[:2],
        shared_data / "kern" / "piano" / "joplin" / held_name,
    ]


def test_the_cli_offers_every_dataset_and_no_other():
    """`--dataset` lists the names by hand (the CLI must not import JAX to show its help)."""
    from omrgemma.cli.train import command

    (option,) = [p for p in command.params if p.name == "dataset"]
    assert sorted(option.type.choices) == sorted(DATASETS)

"""The evaluation runner end to end on a tiny corpus folder: oracle, baselines and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from omrgemma.data import testsets
from omrgemma.errors import ModelError
from omrgemma.evaluate import ConstantPredictor, evaluate, load_predictor, write_examples

# Two hand-written two-staff movements of three bars each.
PIECE = """**kern\t**kern
*staff2\t*staff1
*clefF4\t*clefG2
*k[]\t*k[]
*M2/4\t*M2/4
=1\t=1
4C\t4c
4G\t4e
=2\t=2
2C\t2g
=3\t=3
4F\t4a
4G\t4b
==\t==
*-\t*-
"""
COMMON = "**kern\n*clefG2\n*k[]\n*M2/4\n2c\n==\n*-\n"
RARE = "**kern\n*clefG2\n*k[]\n*M2/4\n2d\n==\n*-\n"


@pytest.fixture()
def corpus(tmp_path: Path) -> Path:
    mine = tmp_path / "kern" / "piano" / "mine"  # not in the committed split: all test data
    mine.mkdir(parents=True)
    (mine / "one.krn").write_text(PIECE)
    (mine / "two.krn").write_text(PIECE.replace("4a", "4cc"))
    joplin = tmp_path / "kern" / "piano" / "joplin"  # names not held out: training data
    joplin.mkdir()
    for name, text in (("x-train.krn", COMMON), ("y-train.krn", COMMON), ("z-train.krn", RARE)):
        (joplin / name).write_text(text)
    return tmp_path


class Oracle:
    """Answers the reference for each image it was shown (a perfect recogniser)."""

    def __init__(self, examples):
        self.answers = {e.image.tobytes(): e.kern for e in examples}

    def predict(self, images):
        return [self.answers[image.tobytes()] for image in images]


def test_a_perfect_predictor_scores_zero_error_and_full_f1(corpus):
    examples = list(testsets.grandstaff_like(corpus, seed=1))
    assert {e.collection for e in examples} == {"piano/mine"}
    report = evaluate(Oracle(examples), examples, batch_size=3)
    assert report.overall.examples == len(examples) >= 2
    assert (report.overall.counts.cer, report.overall.counts.ser, report.overall.counts.ler) == (
        0,
        0,
        0,
    )
    assert report.overall.notes.f1 == 1.0
    assert report.overall.notes.reference == 2 * 10  # per movement: bars of 4 + 2 + 4 notes
    assert report.overall.valid == report.overall.converts == len(examples)


def test_empty_baseline_costs_everything(corpus):
    examples = list(testsets.grandstaff_like(corpus, seed=1))
    report = evaluate(load_predictor("baseline:empty", data=corpus), examples)
    assert report.overall.counts.cer == 100.0
    assert report.overall.notes.f1 == 0.0 and report.overall.valid == 0
    # [""] against n reference symbols (or lines): 1 substitution + n - 1 insertions = n edits
    assert report.overall.counts.ser == 100.0 and report.overall.counts.ler == 100.0


def test_common_baseline_is_the_most_frequent_training_system(corpus):
    predictor = load_predictor("baseline:common", data=corpus)
    assert isinstance(predictor, ConstantPredictor)
    assert predictor.text == COMMON


def test_missing_recognizer_is_a_clear_model_error(tmp_path):
    with pytest.raises(ModelError, match="model loading not available|no such|missing"):
        load_predictor(str(tmp_path / "no-model"))


def test_worst_cases_are_written(corpus, tmp_path):
    examples = list(testsets.grandstaff_like(corpus, seed=1))
    report = evaluate(ConstantPredictor(RARE), examples, keep_worst=2, music=False)
    written = write_examples(report, tmp_path / "worst")
    assert len(written) == 8
    diff = next(p for p in written if p.name.endswith("-diff.txt")).read_text()
    assert diff.startswith("--- reference") and "+2d" in diff


def test_cli_prints_a_table_and_writes_json(corpus, tmp_path):
    from omrgemma.cli.evaluate import command

    out = tmp_path / "report.json"
    result = CliRunner().invoke(
        command,
        ["--model", "baseline:empty", "--data", str(corpus), "--json", str(out), "--no-music"],
    )
    assert result.exit_code == 0, result.output
    assert "piano/mine" in result.output and "100.00" in result.output
    document = json.loads(out.read_text())
    assert document["overall"]["cer"] == 100.0
    assert document["by_collection"]["piano/mine"]["examples"] == document["overall"]["examples"]


def test_note_f1_scores_the_repaired_prediction_text_scores_the_raw_one():
    """Bar 1's left hand read as a half note for a dotted half: as written, music21 cannot time
    the system (every note at onset -1, none matched); `transcribe` repairs it with a rest, and
    note F1 counts what that gives the user, while SER still charges the raw text."""
    import numpy as np

    from omrgemma import metrics
    from omrgemma.data.testsets import Example
    from omrgemma.evaluate import score_example

    reference = (
        "**kern\t**kern\n*M3/4\t*M3/4\n2.C\t4c\n.\t4d\n.\t4e\n=\t=\n2.D\t2.f\n=\t=\n*-\t*-\n"
    )
    prediction = reference.replace("2.C", "2C", 1)
    example = Example(
        id="x", collection="piano/x", image=np.zeros((4, 4), np.uint8), kern=reference
    )
    result = score_example(example, prediction, music=True)
    # all but the misread C (the added rest is no note); unrepaired, none would match
    assert (result.notes.matched, result.notes.predicted, result.notes.reference) == (5, 6, 6)
    assert metrics.note_counts(prediction, metrics.kern_notes(reference)).matched == 0
    assert result.counts.symbol_edits > 0 and not result.valid

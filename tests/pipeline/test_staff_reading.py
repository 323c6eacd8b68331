"""Systems read staff by staff: the staff split, the routing in transcribe and evaluate, confidence.

A stand-in recognizer plays the model: it records the images it is shown and answers a fixed
single-staff kern per staff (TOP for the first staff of each system, BOTTOM for the second), with
per-line log-probabilities, so the tests can see that a staff-level model gets one image per
staff and a system-level model one per system, and what comes out of the join.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from omrgemma.errors import ModelError
from omrgemma.kern.parse import parse
from omrgemma.kern.validate import validate
from omrgemma.pipeline.staves import (
    StaffReader,
    cut_system_start,
    drop_neighbour_ink,
    find_system_staves,
    joined_measure_confidence,
    joined_result,
    split_staves,
    system_reader,
)
from omrgemma.recognizer import SystemResult, model_unit

REPO = Path(__file__).resolve().parents[2]
SCAN_SAMPLE = REPO / "samples" / "images" / "mapleleaf-p1-systems1-2.png"  # two piano systems

TOP = "**kern\n*clefG2\n*k[]\n*M2/4\n4e\n4g\n=\n2c\n=\n*-\n"
BOTTOM = "**kern\n*clefF4\n*k[]\n*M2/4\n2C\n=\n2G\n=\n*-\n"
# A two-staff piano system (right hand on top), engraved by verovio for the split tests.
PIANO = """**kern\t**kern
*clefF4\t*clefG2
*k[b-]\t*k[b-]
*M3/4\t*M3/4
4FF 4F\t4a 4cc
4C\t4ff
4A\t4ccc
=\t=
2.D\t2.dd
=\t=
*-\t*-
"""


def _result(kern: str, low_lines: tuple[str, ...] = ()) -> SystemResult:
    """One token per line of `kern`; lines in `low_lines` get p = 0.1, the others 0.99."""
    pieces = tuple(line + "\n" for line in kern.rstrip("\n").split("\n"))
    logprobs = [math.log(0.1 if p.strip() in low_lines else 0.99) for p in pieces]
    return SystemResult(kern=kern, tokens=tuple(range(len(pieces))),
                        token_logprobs=np.array(logprobs, np.float32), pieces=pieces)  # fmt: skip


@dataclass
class StandIn:
    """A recognizer that answers `answers[i % len(answers)]` for the i-th image of each call."""

    unit: str
    image_size: int | tuple[int, int]
    answers: tuple[SystemResult, ...]
    batch_size: int = 4
    model_dir: Path = Path("stand-in")
    device: str = "cpu"
    calls: list[list[tuple[int, ...]]] = field(default_factory=list)

    def recognize(self, images, starts=None, measures=None):
        self.calls.append([np.asarray(image).shape for image in images])
        return [self.answers[i % len(self.answers)] for i in range(len(images))]

    def predict(self, images):
        return [result.kern for result in self.recognize(images)]


def staff_model() -> StandIn:
    # The top staff's second measure is unsure: its `2c` (p = 0.1) and barline (0.99).
    return StandIn(unit="staff", image_size=(64, 512),
                   answers=(_result(TOP, low_lines=("2c",)), _result(BOTTOM)))  # fmt: skip


def system_model() -> StandIn:
    return StandIn(unit="system", image_size=96, answers=(_result(TOP),))


@pytest.fixture(scope="module")
def piano_image() -> np.ndarray:
    from omrgemma.data.render import render_system

    return render_system(PIANO)


# --- deciding and splitting ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "declared", "unit"),
    [((64, 512), None, "staff"), ((14, 56), None, "staff"), ((16, 48), None, "system"),
     (192, None, "system"), (192, "staff", "staff"), ((64, 512), "system", "system")],
)  # fmt: skip
def test_the_unit_follows_the_input_shape_unless_declared(size, declared, unit):
    assert model_unit(size, declared) == unit


def test_an_unknown_declared_unit_is_a_model_error():
    with pytest.raises(ModelError, match="unknown unit 'page'"):
        model_unit(192, "page")


def test_only_staff_models_are_wrapped():
    system, staff = system_model(), staff_model()
    assert system_reader(system) is system
    reader = system_reader(staff)
    assert isinstance(reader, StaffReader) and reader.inner is staff
    assert reader.image_size == (1024, 1024) and reader.staff_size == (64, 512)
    assert system_reader(reader) is reader
    assert reader.model_dir == staff.model_dir and reader.settings["unit"] == "staff"


def test_a_two_staff_render_splits_into_two_staves_top_to_bottom(piano_image):
    import cv2

    parts = split_staves(piano_image)
    assert len(parts) == 2
    rows = []
    for part in parts:
        assert len(find_system_staves(part)) == 1  # one whole staff in each image
        assert part.shape[1] > 2.5 * part.shape[0]  # a wide strip, as a staff model reads
        match = cv2.matchTemplate(piano_image, part, cv2.TM_SQDIFF)
        assert match.min() == 0  # cut from the render, not resampled
        rows.append(int(np.unravel_index(match.argmin(), match.shape)[0]))
    assert rows[0] < rows[1]
    # halfway between the staves: the cuts do not overlap and keep the top staff's ledger lines
    staves = find_system_staves(piano_image)
    assert rows[0] + parts[0].shape[0] <= rows[1] + 1
    assert rows[0] < staves[0].top - 2 * staves[0].spacing  # `4ccc` sits on ledger lines above


def _line_rows(image: np.ndarray) -> list[int]:
    dark = image < 160
    rows = np.flatnonzero(dark.mean(axis=1) > 0.5)
    return [int(g.mean()) for g in np.split(rows, np.flatnonzero(np.diff(rows) > 1) + 1)]


def test_staves_cut_from_a_system_lose_its_brace_and_barline_as_a_lone_staff_has_none(
    piano_image,
):
    from omrgemma.data.kern_examples import trim_white
    from omrgemma.data.render import render_system

    # the render joins its staves with a barline (and a brace left of it)
    lines = _line_rows(piano_image)
    assert len(lines) == 10
    joined = (piano_image[lines[0] : lines[-1] + 1] < 160).mean(axis=0) > 0.9
    assert joined[: piano_image.shape[1] // 10].any()
    for part in split_staves(piano_image):
        lines = _line_rows(part)
        assert len(lines) == 5
        dark = part < 160
        start = int(np.argmax(dark[lines].all(axis=0)))
        assert start <= 5  # the staff's lines start the image (trimmed with a 4 px margin)
        barline = dark[lines[0] : lines[-1] + 1, : start + 3].mean(axis=0) > 0.9
        assert not barline.any()
    alone = trim_white(render_system(TOP))
    assert cut_system_start(alone) is alone  # nothing to cut from a staff rendered alone
    blank = np.full((30, 200), 255, np.uint8)
    assert cut_system_start(blank) is blank


def test_a_photographed_render_still_has_two_staves(piano_image):
    from omrgemma.data.augment import augment_camera

    photo = augment_camera(piano_image, np.random.default_rng(1))
    assert len(split_staves(photo)) == 2


def test_a_single_staff_passes_through_uncut_and_trimmed_as_in_training():
    from omrgemma.data.kern_examples import trim_white
    from omrgemma.data.render import render_system

    image = render_system(TOP)
    framed = np.pad(image, 40, constant_values=255)  # page margins around the staff
    [part] = split_staves(framed)
    np.testing.assert_array_equal(part, trim_white(image))
    reader = system_reader(staff_model())
    [result] = reader.recognize([image])
    assert result.kern == TOP and result.staves == ()


def _staff_crop() -> np.ndarray:
    """A 130 x 200 cut: a staff with lines at rows 40..80 (spacing 10), white elsewhere."""
    crop = np.full((130, 200), 255, np.uint8)
    crop[40:81:10, 10:190] = 0
    return crop


def test_ink_from_the_next_staff_at_a_cut_edge_is_dropped_far_from_the_lines():
    crop = _staff_crop()
    crop[108:130, 100:103] = 0  # a stem from the staff below, cut at the bottom edge
    crop[122:130, 40:60] = 0  # its beam
    crop[90:130, 150:153] = 0  # ink from the edge to 1 spacing under the lines: the staff's own
    crop[0:12, 120:123] = 0  # a fragment at the top edge
    crop[127:130, 170:172] = 0  # a speck at the bottom edge: paper grain, not a stroke
    crop[105:110, 20:30] = 0  # a mark in the gap that touches no edge
    out = drop_neighbour_ink(crop, (40, 80), 10.0, cut_above=False, cut_below=True)
    assert (out[108:130, 100:103] == 255).all() and (out[122:130, 40:60] == 255).all()
    kept_parts = np.s_[90:130, 150:153], np.s_[0:12], np.s_[105:110, 20:30], np.s_[127:, 170:172]
    for kept in (*kept_parts, np.s_[40:81]):
        np.testing.assert_array_equal(out[kept], crop[kept])  # the top edge is no cut here
    cut_top = drop_neighbour_ink(crop, (40, 80), 10.0, cut_above=True, cut_below=False)
    assert (cut_top[0:12, 120:123] == 255).all() and (cut_top[108:130, 100:103] == 0).all()
    assert drop_neighbour_ink(crop, (40, 80), 10.0, cut_above=False, cut_below=False) is crop


# The left hand's beamed sixteenths climb above its staff with stems up, across the halfway line.
HIGH_LEFT_HAND = (
    "**kern\t**kern\n*clefF4\t*clefG2\n*k[]\t*k[]\n*M2/4\t*M2/4\n16c/LL\t2e\n"
    + "16e/\t.\n16g/\t.\n16e/JJ\t.\n16c/LL\t.\n16e/\t.\n16g/\t.\n16e/JJ\t.\n=\t=\n*-\t*-\n"
)


def test_a_staffs_own_notes_on_ledger_lines_are_kept_when_their_stems_cross_the_cut():
    from omrgemma.data.render import render_system

    system = render_system(HIGH_LEFT_HAND)
    upper, lower = find_system_staves(system)
    halfway = round((upper.bottom + lower.top) / 2)
    cut = np.ascontiguousarray(system[halfway:])
    assert (cut[0] < 160).any()  # the stems run into the cut edge
    lines = (lower.top - halfway, lower.bottom - halfway)
    out = drop_neighbour_ink(cut, lines, lower.spacing, cut_above=True, cut_below=False)
    # the noteheads on their ledger lines, and the stems down to them, are untouched (the right
    # hand's half-note stem, which also crosses the cut, may go)
    notes = round(lines[0] - 1.5 * lower.spacing)
    assert (cut[notes : round(lines[0])] < 160).sum() > 100
    np.testing.assert_array_equal(out[notes:], cut[notes:])


# --- confidence ---------------------------------------------------------------------------------


def test_joined_confidence_is_the_least_sure_staff_per_measure():
    top, bottom = _result(TOP, low_lines=("2c",)), _result(BOTTOM)
    joined = joined_result([top, bottom])
    assert [s.kern for s in joined.staves] == [TOP, BOTTOM]
    assert len(joined.token_logprobs) == len(top.tokens) + len(bottom.tokens)
    scores = joined_measure_confidence(joined)
    assert [s.measure for s in scores] == [1, 2]
    assert scores[0].p == pytest.approx(0.99)
    assert scores[1].p == pytest.approx(math.sqrt(0.1 * 0.99))  # the top staff's 2c and bar
    lines = joined.kern.split("\n")
    first, last = scores[1].lines
    assert lines[first - 1] == "2G\t2c" and lines[last - 1] == "=\t="


# --- routing: transcribe ------------------------------------------------------------------------


def test_transcribe_reads_a_staff_model_staff_by_staff(tmp_path):
    from music21 import converter

    from omrgemma.pipeline.transcribe import TranscribeOptions, transcribe_file

    model = staff_model()
    options = TranscribeOptions(formats=("krn", "musicxml"))
    report = transcribe_file(SCAN_SAMPLE, model, tmp_path, options)
    assert report.systems == 2
    [shapes] = model.calls  # every staff of the score in one call
    assert len(shapes) == 4 and all(w > 4 * h for h, w in shapes)
    kern = (tmp_path / f"{SCAN_SAMPLE.stem}.krn").read_text()
    doc = parse(kern)
    assert doc.spine_types == ("**kern", "**kern")
    assert "*clefF4\t*clefG2" in kern.splitlines()  # the lower staff is the first spine
    assert len(doc.measures) == 4
    assert not [p for p in validate(doc) if p.severity == "error"]
    # the unsure top-staff measure 2 makes measure 2 of each system low
    assert [(low["system"], low["measure"]) for low in report.low_confidence] == [(1, 2), (2, 2)]
    assert "in system 2 measure 2" in kern
    sidecar = json.loads((tmp_path / f"{SCAN_SAMPLE.stem}.omrgemma.json").read_text())
    assert sidecar["systems"][0]["staves"] == [TOP, BOTTOM]
    score = converter.parse(tmp_path / f"{SCAN_SAMPLE.stem}.musicxml")
    assert len(score.parts) == 2


def test_batch_reads_a_staff_model_staff_by_staff(tmp_path):
    from omrgemma.pipeline.batch import BatchOptions, run_batch

    source = tmp_path / "in"
    source.mkdir()
    (source / SCAN_SAMPLE.name).write_bytes(SCAN_SAMPLE.read_bytes())
    model = staff_model()
    summary = run_batch(source, tmp_path / "out", model, BatchOptions(workers=0))
    assert summary.done == 1 and summary.systems == 2
    shapes = [s for call in model.calls for s in call]
    assert len(shapes) == 4 and all(w > 4 * h for h, w in shapes)  # 2 systems x 2 staves
    kern = (tmp_path / "out" / f"{SCAN_SAMPLE.stem}.krn").read_text()
    assert parse(kern).spine_types == ("**kern", "**kern")


def test_transcribe_reports_a_staff_padded_with_rests(tmp_path):
    from omrgemma.pipeline.transcribe import TranscribeOptions, transcribe_file

    short = "**kern\n*clefF4\n*k[]\n*M2/4\n2C\n=\n*-\n"
    model = StandIn(unit="staff", image_size=(64, 512), answers=(_result(TOP), _result(short)))
    report = transcribe_file(SCAN_SAMPLE, model, tmp_path, TranscribeOptions(formats=("krn",)))
    padded = [p for p in report.problems if p["code"] == "staff-measures"]
    assert [(p["system"], p["measure"]) for p in padded] == [(1, 2), (2, 2)]
    kern = (tmp_path / f"{SCAN_SAMPLE.stem}.krn").read_text()
    assert "!!omrgemma: problem in system 1 measure 2: staff 2 of 2" in kern


def test_transcribe_gives_a_system_model_whole_systems(tmp_path):
    from omrgemma.pipeline.transcribe import TranscribeOptions, transcribe_file

    model = system_model()
    transcribe_file(SCAN_SAMPLE, model, tmp_path, TranscribeOptions(formats=("krn",)))
    assert model.calls == [[(96, 96), (96, 96)]]
    kern = (tmp_path / f"{SCAN_SAMPLE.stem}.krn").read_text()
    assert parse(kern).spine_types == ("**kern",)


# --- routing: evaluate --------------------------------------------------------------------------


@pytest.fixture()
def piano_corpus(tmp_path: Path) -> Path:
    mine = tmp_path / "data" / "kern" / "piano" / "mine"  # not in the committed split: test data
    mine.mkdir(parents=True)
    (mine / "one.krn").write_text(PIANO)
    return tmp_path / "data"


def test_evaluate_splits_systems_for_a_staff_model_only(piano_corpus, monkeypatch):
    from omrgemma.data import testsets
    from omrgemma.evaluate import evaluate, load_predictor

    examples = list(testsets.grandstaff_like(piano_corpus))
    for model, images, spines in ((staff_model(), 2, 2), (system_model(), 1, 1)):
        monkeypatch.setattr(
            "omrgemma.recognizer.load_recognizer", lambda path, m=model, **options: m
        )
        predictor = load_predictor("models/any")
        assert isinstance(predictor, StaffReader) == (model.unit == "staff")
        report = evaluate(predictor, examples, music=False)
        assert sum(len(call) for call in model.calls) == images * len(examples)
        assert report.overall.examples == len(examples) and report.overall.valid == len(examples)
        assert report.worst_first()[0].prediction.split("\n")[0].count("**kern") == spines


def test_evaluate_cli_runs_a_staff_model_on_the_piano_set(piano_corpus, monkeypatch):
    from omrgemma.cli.evaluate import command
    from omrgemma.data import testsets

    systems = len(list(testsets.grandstaff_like(piano_corpus)))
    model = staff_model()
    monkeypatch.setattr("omrgemma.recognizer.load_recognizer", lambda path, **options: model)
    result = CliRunner().invoke(command, ["--model", "models/any", "--set", "grandstaff-like",
                                          "--data", str(piano_corpus), "--no-music"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "piano/mine" in result.output
    assert sum(len(call) for call in model.calls) == 2 * systems  # two staves per system


# --- a real (random, tiny) staff model ----------------------------------------------------------


@pytest.fixture(scope="module")
def staff_model_dir(tmp_path_factory) -> Path:
    """A TINY random model reading 64 x 512 images (16 px patches: a 4 x 32 grid)."""
    from dataclasses import replace

    import jax

    from omrgemma.checkpoint import save_model_dir
    from omrgemma.config import TINY
    from omrgemma.kerntok import KernTokenizerSpec, train_kern_tokenizer
    from omrgemma.nn.paligemma import init_params

    config = replace(TINY, name="tiny-staff", image_size=(64, 512), patch_size=16)
    samples = sorted((REPO / "samples" / "images").glob("*.krn"))
    lines = [line for p in samples for line in p.read_text(encoding="utf-8").splitlines()]
    chunks = ["\n".join(lines[i : i + 6]) for i in range(0, len(lines), 3)]
    tokenizer = train_kern_tokenizer(chunks, KernTokenizerSpec(vocab_size=config.vocab_size))
    directory = tmp_path_factory.mktemp("models") / "tiny-staff"
    save_model_dir(directory, init_params(config, jax.random.key(0)), config, tokenizer=tokenizer)
    (directory / "inference.json").write_text(json.dumps({"max_new_tokens": 8}))
    return directory


def test_a_tiny_staff_model_reads_a_piano_system_staff_by_staff(staff_model_dir, piano_image):
    from omrgemma.evaluate import load_predictor
    from omrgemma.recognizer import load_recognizer

    assert load_recognizer(staff_model_dir, device="cpu").unit == "staff"
    reader = load_predictor(str(staff_model_dir))
    assert isinstance(reader, StaffReader) and reader.staff_size == (64, 512)
    [result] = reader.recognize([piano_image])
    assert len(result.staves) == 2
    assert all(1 <= len(s.tokens) <= 8 for s in result.staves)
    assert len(result.token_logprobs) == sum(len(s.tokens) for s in result.staves)
    assert parse(result.kern).kern_spine_count >= 2  # whatever it wrote, one spine per staff


def test_the_model_folder_says_how_many_measures_a_piece_holds(staff_model_dir, tmp_path):
    import shutil

    from omrgemma.evaluate import load_predictor
    from omrgemma.recognizer import load_recognizer

    assert load_predictor(str(staff_model_dir)).piece_measures is None  # not said: whole systems
    folder = tmp_path / "pieces"
    shutil.copytree(staff_model_dir, folder)
    (folder / "inference.json").write_text(json.dumps({"max_new_tokens": 8, "piece_measures": 3}))
    assert load_predictor(str(folder)).piece_measures == 3
    for bad in (0, 2.5, "4", True):
        (folder / "inference.json").write_text(json.dumps({"piece_measures": bad}))
        with pytest.raises(ModelError, match="piece_measures"):
            load_recognizer(folder, device="cpu")


def test_the_model_folder_says_its_beam_width_and_beam_overrides_it(staff_model_dir, tmp_path):
    import shutil

    from omrgemma import decode
    from omrgemma.recognizer import load_recognizer

    assert load_recognizer(staff_model_dir, device="cpu").strategy == decode.Greedy()
    folder = tmp_path / "beam"
    shutil.copytree(staff_model_dir, folder)
    (folder / "inference.json").write_text(json.dumps({"max_new_tokens": 8, "beam": 3}))
    assert load_recognizer(folder, device="cpu").strategy == decode.BeamSearch(width=3)
    assert load_recognizer(folder, device="cpu", beam=1).strategy == decode.Greedy()
    assert load_recognizer(folder, device="cpu", beam=2).strategy == decode.BeamSearch(width=2)
    for bad in (0, 17, 2.5, "4", True):
        (folder / "inference.json").write_text(json.dumps({"beam": bad}))
        with pytest.raises(ModelError, match="beam"):
            load_recognizer(folder, device="cpu")


@pytest.mark.parametrize(("data", "settings"), [
    ({"dataset": "staves", "measures": [1, 4]}, {"piece_measures": 4}),
    ({"dataset": "single", "measures": [1, 2]}, {"piece_measures": 2}),
    ({"dataset": "piano", "measures": [1, 8]}, None),
])  # fmt: skip
def test_an_exported_staff_model_reads_pieces_as_long_as_it_trained_on(data, settings):
    from omrgemma.train_run import inference_settings

    assert inference_settings({"data": data}) == settings

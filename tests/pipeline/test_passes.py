"""Reading each image several times and keeping the surest reading (`omrgemma.pipeline.passes`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from omrgemma.errors import UsageError
from omrgemma.pipeline.passes import MultiPass, mean_logprob, scaled_width, with_passes
from omrgemma.pipeline.staves import StaffReader, system_reader
from omrgemma.recognizer import SystemResult

REPO = Path(__file__).resolve().parents[2]
PIANO = (
    "**kern\t**kern\n*clefF4\t*clefG2\n*M2/4\t*M2/4\n2C\t4e\n.\t4g\n=\t=\n2G\t2c\n=\t=\n*-\t*-\n"
)


def _answer(text: str, logprobs: list[float]) -> SystemResult:
    return SystemResult(kern=text, tokens=tuple(range(len(logprobs))),
                        token_logprobs=np.array(logprobs, np.float32),
                        pieces=(text,) + ("",) * (len(logprobs) - 1))  # fmt: skip


@dataclass
class WidthModel:
    """Answers each image with its width, surer the closer the width is to `best[i]` (the
    i-th image of the call, counted per pass)."""

    best: tuple[int, ...]
    unit: str = "staff"
    image_size: tuple[int, int] = (64, 512)
    calls: list[list[tuple[int, ...]]] = field(default_factory=list)

    def recognize(self, images):
        self.calls.append([np.asarray(image).shape for image in images])
        out = []
        for index, image in enumerate(images):
            width = np.asarray(image).shape[1]
            target = self.best[index % len(self.best)]
            text = f"**kern\n!w{width}\n4c\n=\n*-\n"
            out.append(_answer(text, [-abs(width - target) / 100.0, -0.01]))
        return out


def test_each_image_is_read_at_three_widths_in_one_call_and_the_surest_kept():
    images = [np.full((20, 200), 255, np.uint8), np.full((30, 400), 255, np.uint8)]
    model = WidthModel(best=(190, 420))  # the first image's 0.95 pass, the second's 1.05
    results = MultiPass(inner=model, passes=3).recognize(images)
    [shapes] = model.calls
    assert shapes == [(20, 200), (30, 400), (20, 190), (30, 380), (20, 210), (30, 420)]
    assert [r.kern.split("\n")[1] for r in results] == ["!w190", "!w420"]


def test_two_passes_read_the_image_as_it_is_and_narrower():
    model = WidthModel(best=(1000,))
    [result] = MultiPass(inner=model, passes=2).recognize([np.zeros((10, 100), np.uint8)])
    assert model.calls == [[(10, 100), (10, 95)]]
    assert "!w100" in result.kern  # 100 is nearer 1000 than 95


def test_an_empty_reading_never_wins():
    empty = _answer("", [])
    assert mean_logprob(empty) == float("-inf")
    assert mean_logprob(_answer("x", [-5.0, -7.0])) == pytest.approx(-6.0)


def test_scaled_width_keeps_the_height_and_the_ink():
    image = np.full((40, 300), 255, np.uint8)
    image[10:30, 100:200] = 0
    narrow, wide = scaled_width(image, 0.95), scaled_width(image, 1.05)
    assert narrow.shape == (40, 285) and wide.shape == (40, 315)
    assert (narrow < 128).sum() == pytest.approx(20 * 95, rel=0.03)
    assert scaled_width(image, 1.0) is image


def test_one_pass_is_the_recognizer_itself_and_too_many_is_an_error():
    model = WidthModel(best=(1,))
    assert with_passes(model, 1) is model
    with pytest.raises(UsageError, match="passes must be 1 to 3"):
        MultiPass(inner=model, passes=4)


def test_a_staff_model_read_in_passes_is_still_read_staff_by_staff():
    reader = system_reader(with_passes(WidthModel(best=(1,)), 3))
    assert isinstance(reader, StaffReader) and isinstance(reader.inner, MultiPass)
    assert reader.staff_size == (64, 512)
    assert reader.settings["passes"] == 3 and reader.settings["unit"] == "staff"


def test_transcribe_takes_passes_from_its_option(tmp_path, monkeypatch):
    from omrgemma.cli.transcribe import command

    sample = REPO / "samples" / "images" / "mapleleaf-p1-systems1-2.png"
    runner = CliRunner()
    bad = runner.invoke(command, [str(sample), "--passes", "4", "-o", str(tmp_path)])
    assert bad.exit_code == 2 and "--passes" in bad.output
    models = []

    def fake_load(model_dir, resolution, beam, passes, quantize, device, batch_size):
        model = WidthModel(best=(1,))
        model.model_dir, model.device = Path("stand-in"), "cpu"
        models.append(model)
        return with_passes(model, passes)

    monkeypatch.setattr("omrgemma.cli.transcribe.load", fake_load)
    args = [str(sample), "--passes", "2", "--to", "krn", "-o", str(tmp_path)]
    result = runner.invoke(command, args)
    assert result.exit_code == 0, result.output
    [model] = models
    [shapes] = model.calls  # 2 systems x 2 staves, each at two widths
    assert len(shapes) == 8 and [w for _, w in shapes[4:]] == [
        round(w * 0.95) for _, w in shapes[:4]
    ]
    assert (tmp_path / f"{sample.stem}.krn").read_text().count("**kern") == 2  # two spines


def test_evaluate_takes_passes_from_its_option(tmp_path, monkeypatch):
    from omrgemma.cli.evaluate import command
    from omrgemma.data import testsets

    corpus = tmp_path / "kern" / "piano" / "mine"  # not in the committed split: all test data
    corpus.mkdir(parents=True)
    (corpus / "one.krn").write_text(PIANO)
    systems = len(list(testsets.grandstaff_like(tmp_path)))
    model = WidthModel(best=(1,))
    monkeypatch.setattr("omrgemma.recognizer.load_recognizer", lambda path: model)
    result = CliRunner().invoke(command, ["--model", "models/any", "--data", str(tmp_path),
                                          "--no-music", "--passes", "3"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert systems and sum(len(call) for call in model.calls) == 3 * 2 * systems

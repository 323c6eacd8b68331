"""transcribe and batch on the bundled samples with a tiny random model (garbage music, real files)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from omrgemma.cli import cli
from omrgemma.errors import OutputExistsError, PartialFailure

REPO = Path(__file__).resolve().parents[2]
SCAN_SAMPLE = REPO / "samples" / "images" / "mapleleaf-p1-systems1-2.png"
RENDERED_SAMPLE = REPO / "samples" / "images" / "chopin-op1-rondo-system1.png"


def _run(args: list[str]):
    return CliRunner().invoke(cli, args, standalone_mode=False)


def test_transcribe_writes_every_format(tiny_model, recognizer, tmp_path):
    from music21 import converter

    from omrgemma.pipeline.transcribe import TranscribeOptions, transcribe_file

    options = TranscribeOptions(formats=("krn", "musicxml", "midi", "mei", "svg"))
    report = transcribe_file(SCAN_SAMPLE, recognizer, tmp_path, options)
    stem = SCAN_SAMPLE.stem
    for suffix in (".krn", ".musicxml", ".mid", ".mei", ".svg", ".omrgemma.json"):
        assert (tmp_path / f"{stem}{suffix}").stat().st_size > 0, suffix
    assert report.pages == 1 and report.systems == 2  # the sample holds two systems
    score = converter.parse(tmp_path / f"{stem}.musicxml")
    assert len(score.parts) >= 1 and len(score.parts[0].getElementsByClass("Measure")) >= 1
    kern = (tmp_path / f"{stem}.krn").read_text()
    assert kern.splitlines()[-1].startswith("*-")
    assert kern.count("!!LO:LB:g=original") == 1  # two systems, one break
    # every low-confidence measure is listed and marked in the kern
    for low in report.low_confidence:
        assert f"in system {low['system']} measure {low['measure']}" in kern
    sidecar = json.loads((tmp_path / f"{stem}.omrgemma.json").read_text())
    assert [s["number"] for s in sidecar["systems"]] == [1, 2]
    assert len(sidecar["pages"][0]["transform"]) == 2
    with pytest.raises(OutputExistsError):
        transcribe_file(SCAN_SAMPLE, recognizer, tmp_path, options)


def test_cli_json_summary_and_no_staves(tiny_model, tmp_path):
    blank = tmp_path / "blank.png"
    import cv2
    import numpy as np

    cv2.imwrite(str(blank), np.full((400, 600), 255, np.uint8))
    result = _run(["transcribe", str(RENDERED_SAMPLE), str(blank), "--model", str(tiny_model),
                   "-o", str(tmp_path / "out"), "--json", "-q", "--device", "cpu"])  # fmt: skip
    assert isinstance(result.exception, PartialFailure)  # exit code 3 through omrgemma.cli.main
    summary = json.loads(result.stdout)
    assert [Path(s["input"]).name for s in summary["scores"]] == [RENDERED_SAMPLE.name]
    assert summary["failed"][0]["input"] == str(blank)
    assert "no staves" in summary["failed"][0]["error"]


def _batch_source(tmp_path: Path) -> Path:
    source = tmp_path / "in"
    (source / "scans").mkdir(parents=True)
    shutil.copy(SCAN_SAMPLE, source / "scans" / "maple.png")
    shutil.copy(RENDERED_SAMPLE, source / "chopin.png")
    (source / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    import cv2
    import numpy as np

    cv2.imwrite(str(source / "blank.png"), np.full((300, 500), 255, np.uint8))
    return source


def test_batch_corrupt_and_non_music_inputs(tiny_model, recognizer, tmp_path):
    from omrgemma.pipeline.batch import BatchOptions, run_batch
    from omrgemma.pipeline.manifest import Manifest

    source, out = _batch_source(tmp_path), tmp_path / "out"
    summary = run_batch(source, out, recognizer, BatchOptions(workers=0))
    assert (summary.inputs, summary.done, summary.failed) == (4, 2, 2)
    records = Manifest(out / "manifest.jsonl").read()
    assert records["scans/maple.png"]["status"] == "ok"
    assert records["scans/maple.png"]["systems"] == 2
    assert "scans/maple.krn" in records["scans/maple.png"]["outputs"]
    assert (out / "scans" / "maple.krn").is_file() and (out / "chopin.musicxml").is_file()
    assert records["corrupt.png"]["status"] == "failed"
    assert "corrupt.png" in records["corrupt.png"]["error"]
    assert "no staves" in records["blank.png"]["error"]
    assert (out / "manifest.csv").read_text().count("\n") == 5
    again = run_batch(source, out, recognizer, BatchOptions(workers=0))
    assert (again.skipped, again.done, again.failed) == (2, 0, 2)  # failures are retried


def test_batch_cli_exit_code_3(tiny_model, tmp_path):
    source = _batch_source(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-m", "omrgemma", "batch", str(source), "-o", str(tmp_path / "out"),
         "--model", str(tiny_model), "--workers", "1", "--device", "cpu", "-q"],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert done.returncode == 3, done.stderr
    assert "2 of 4 inputs failed" in done.stderr


def test_batch_kill_and_resume(tiny_model, tmp_path):
    """SIGKILL after the first manifest line; the rerun loses nothing and redoes nothing."""
    source = tmp_path / "in"
    source.mkdir()
    for i in range(6):
        shutil.copy(RENDERED_SAMPLE, source / f"piece{i}.png")
    out = tmp_path / "out"
    manifest = out / "manifest.jsonl"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    args = [sys.executable, "-m", "omrgemma", "batch", str(source), "-o", str(out), "--model",
            str(tiny_model), "--workers", "0", "--batch-size", "1", "--device", "cpu", "-q"]  # fmt: skip
    process = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None:
        if manifest.exists() and manifest.read_text().count("\n") >= 1:
            break
        time.sleep(0.05)
    assert process.poll() is None, "the batch finished before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    first = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
    assert 1 <= len(first) < 6
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
    names = [r["input"] for r in lines]
    assert sorted(set(names)) == [f"piece{i}.png" for i in range(6)]
    assert len(names) == len(set(names))  # nothing done twice
    for i in range(6):
        assert (out / f"piece{i}.krn").is_file() and (out / f"piece{i}.mid").is_file()
    assert not list(out.glob(".*.tmp"))

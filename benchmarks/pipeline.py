"""Seconds per page for `transcribe` on a real scan, split into page analysis, model and
conversion; and batch pages/minute against one `transcribe` call per file.

    .venv/bin/python benchmarks/pipeline.py --model models/omrgemma-small \
        --scan ../shared/data/scans/joplin/mapleleaf.pdf --pages 1-2 --files 3

Without --model a TINY random model is built in a temporary folder (the model share is then
meaningless; analysis and conversion are real). Prints one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument(
        "--scan", default=str(REPO.parent / "shared/data/scans/joplin/mapleleaf.pdf")
    )
    parser.add_argument("--pages", default="1")
    parser.add_argument("--files", type=int, default=2, help="copies for the batch comparison")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="omrgemma-bench-"))
    try:
        model = args.model or str(_tiny(work / "tiny"))
        print(json.dumps(run(model, Path(args.scan), args.pages, args.files, args.device, work),
                         indent=1))  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _tiny(directory: Path) -> Path:
    sys.path.insert(0, str(REPO / "tests" / "pipeline"))
    from conftest import make_tiny_model

    return make_tiny_model(directory)


def run(model: str, scan: Path, pages: str, files: int, device: str, work: Path) -> dict:
    from omrgemma.pipeline.transcribe import TranscribeOptions, transcribe_file
    from omrgemma.recognizer import load_recognizer

    began = time.perf_counter()
    recognizer = load_recognizer(model, device=device)
    load = time.perf_counter() - began
    options = TranscribeOptions(pages=pages, force=True)
    transcribe_file(scan, recognizer, work / "warm", options)  # compile once
    report = transcribe_file(scan, recognizer, work / "one", options)
    s = report.seconds
    per_page = {k: round(v / report.pages, 3) for k, v in s.items()}
    source = work / "batch-in"
    source.mkdir()
    for i in range(files):
        shutil.copy(scan, source / f"copy{i}{scan.suffix}")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    common = ["--model", model, "--pages", pages, "--device", device, "-q", "--force"]
    began = time.perf_counter()
    for i in range(files):
        subprocess.run([sys.executable, "-m", "omrgemma", "transcribe",
                        str(source / f"copy{i}{scan.suffix}"), "-o", str(work / "each"), *common],
                       check=True, env=env)  # fmt: skip
    each = time.perf_counter() - began
    began = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "omrgemma", "batch", str(source), "-o",
                           str(work / "batch"), *common], env=env)  # fmt: skip
    batch = time.perf_counter() - began
    total_pages = report.pages * files
    return {
        "scan": str(scan), "pages": pages, "device": recognizer.device, "model": model,
        "model_load_s": round(load, 2), "systems_per_page": report.systems / report.pages,
        "transcribe_s_per_page": per_page,
        "share": {k: round(s[k] / s["total"], 3) for k in ("read", "analyze", "model", "convert")},
        "batch_exit": done.returncode,
        "pages_per_minute": {"transcribe_per_file": round(60 * total_pages / each, 2),
                             "batch": round(60 * total_pages / batch, 2)},
    }  # fmt: skip


if __name__ == "__main__":
    main()

"""Corpus check: does every .krn parse, validate clean, convert to MusicXML and read back the same?

For each file (2 worker processes, a per-file timeout):
  parse      omrgemma.kern.parse.parse raises nothing
  valid      omrgemma.kern.validate finds no errors (warnings allowed)
  musicxml   converter21 reads it, music21 writes MusicXML, music21 reads that MusicXML back with
             the same number of notes (chord notes counted one by one, grace notes included) and
             the same number of measures per part as the score converter21 produced

    .venv/bin/python benchmarks/kern_corpus.py [ROOT] [--limit N] [--timeout S] [--out FILE.md]

ROOT defaults to $OMRGEMMA_DATA/kern. The summary (Markdown) goes to stdout and to --out.
"""

from __future__ import annotations

import argparse
import collections
import multiprocessing
import random
import signal
import sys
import time
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path

STAGES = ("parse", "valid", "musicxml")


def count_music(score) -> tuple[int, list[int]]:
    """(notes, measures per part) of a music21 score; a chord counts each of its notes.

    Tie continuations are not counted: MusicXML export splits a note whose duration one note
    head cannot show into tied notes, which is the same music.
    """
    notes = 0
    for element in score.recurse().notes:
        for note in element.notes if element.isChord else [element]:
            tie = note.tie if note.tie is not None else element.tie
            notes += tie is None or tie.type == "start"
    measures = [len(part.getElementsByClass("Measure")) for part in score.parts]
    return notes, measures


def check_file(path: str) -> dict:
    """Run every stage on one file; stop at the first failure and say why."""
    from omrgemma.kern.convert import score_to_musicxml, to_score
    from omrgemma.kern.files import read_kern
    from omrgemma.kern.parse import parse
    from omrgemma.kern.validate import validate

    result = {"path": path, "failed": None, "why": "", "errors": []}
    try:
        text = read_kern(path)
        doc = parse(text, path)
    except Exception as exc:  # noqa: BLE001 - a corpus report lists every failure
        return {**result, "failed": "parse", "why": f"{type(exc).__name__}: {exc}"}
    errors = [p for p in validate(doc) if p.severity == "error"]
    result["errors"] = sorted({p.code for p in errors})
    try:
        from music21 import converter

        score = to_score(text, path=path)
        xml = score_to_musicxml(score)
        back = converter.parseData(xml.decode("utf-8"), format="musicxml", forceSource=True)
        before, after = count_music(score), count_music(back)
        if before != after:
            why = f"notes/measures {before[0]}/{before[1]} -> {after[0]}/{after[1]}"
            return {**result, "failed": "musicxml", "why": why}
    except Exception as exc:  # noqa: BLE001
        return {**result, "failed": "musicxml", "why": f"{type(exc).__name__}: {str(exc)[:200]}"}
    return result


def _alarm(signum, frame):
    raise TimeoutError("per-file timeout")


def check_file_with_timeout(path: str, timeout: float) -> dict:
    """`check_file` under SIGALRM, so a hanging conversion frees its worker after `timeout` s."""
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(max(1, int(timeout)))
    try:
        return check_file(path)
    except TimeoutError:
        return {"path": path, "failed": "musicxml", "why": f"timeout {timeout:g} s", "errors": []}
    finally:
        signal.alarm(0)


def run(files: list[Path], *, workers: int = 2, timeout: float = 120, progress=None) -> list[dict]:
    """Check files in `workers` processes; a file over `timeout` seconds counts as a failure.

    `progress(results)` is called every 100 files, so a long run leaves a partial summary.
    """
    results = []
    context = multiprocessing.get_context("spawn")
    with context.Pool(workers, maxtasksperchild=50) as pool:
        jobs = [
            (path, pool.apply_async(check_file_with_timeout, (str(path), timeout)))
            for path in files
        ]
        for i, (path, future) in enumerate(jobs, 1):
            try:
                # a backstop only: the alarm inside the worker normally ends a slow file first
                results.append(future.get(timeout=timeout * len(files)))
            except (FutureTimeout, multiprocessing.TimeoutError):
                results.append(
                    {
                        "path": str(path),
                        "failed": "musicxml",
                        "why": f"timeout {timeout:g} s",
                        "errors": [],
                    }
                )
            if i % 100 == 0:
                print(f"{i}/{len(files)}", file=sys.stderr, flush=True)
                if progress is not None:
                    progress(results)
    return results


def summary(results: list[dict], root: Path, seconds: float, planned: int) -> str:
    total = len(results)
    parsed = sum(r["failed"] != "parse" for r in results)
    valid = sum(r["failed"] != "parse" and not r["errors"] for r in results)
    converted = sum(r["failed"] is None for r in results)
    lines = [
        "# Kern corpus check",
        "",
        f"{total} of {planned} files under `{root}` checked"
        f"{' (a partial run)' if total < planned else ''}, {seconds / 60:.1f} min with 2 worker processes.",
        "Command: `nice -n 10 .venv/bin/python benchmarks/kern_corpus.py --out benchmarks/results/kern_corpus.md`",
        "",
        "| stage | files | share |",
        "|---|---:|---:|",
    ]
    for name, count in (
        ("parse", parsed),
        ("validate: no errors", valid),
        ("MusicXML round trip", converted),
    ):
        lines.append(f"| {name} | {count} | {100 * count / max(total, 1):.2f} % |")
    codes = collections.Counter(code for r in results for code in r["errors"])
    lines += ["", "## Validation errors (files per code)", ""]
    lines += [f"- `{code}`: {n}" for code, n in codes.most_common()] or ["- none"]
    by_collection = collections.Counter(
        Path(r["path"]).relative_to(root).parts[0] for r in results if r["errors"]
    )
    lines += [
        "",
        "Files with validation errors per collection: "
        + ", ".join(f"{k} {v}" for k, v in by_collection.most_common()),
    ]
    failures = [r for r in results if r["failed"]]
    lines += ["", f"## Conversion failures ({len(failures)})", ""]
    lines += [
        f"- `{Path(r['path']).relative_to(root)}` ({r['failed']}): {r['why']}" for r in failures
    ] or ["- none"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    from omrgemma.settings import data_dir

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", nargs="?", type=Path, default=data_dir() / "kern")
    parser.add_argument("--limit", type=int, default=0, help="check every Nth file only (0: all)")
    parser.add_argument("--timeout", type=float, default=120)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    files = sorted(args.root.rglob("*.krn"))
    if args.limit:
        files = files[:: max(1, len(files) // args.limit)][: args.limit]
    # a fixed shuffle, so that a run cut short still samples every collection
    random.Random(0).shuffle(files)
    began = time.perf_counter()

    def report(results: list[dict]) -> str:
        text = summary(results, args.root, time.perf_counter() - began, len(files))
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(text)
        return text

    results = run(files, workers=args.workers, timeout=args.timeout, progress=report)
    print(report(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Corpus check: does every .krn parse, validate clean, convert to MusicXML and read back the same?

For each file (2 worker processes, a per-file timeout):
  parse      omrgemma.kern.parse.parse raises nothing
  valid      omrgemma.kern.validate finds no errors (warnings allowed)
  musicxml   converter21 reads it, music21 writes MusicXML, music21 reads that MusicXML back with
             the same number of notes (chord notes counted one by one, grace notes included) and
             the same number of measures per part as the score converter21 produced

    nice -n 10 .venv/bin/python benchmarks/kern_corpus.py [ROOT] [--sample N] [--seed S]
        [--limit N] [--timeout S] [--workers W] [--out FILE.md]

ROOT defaults to $OMRGEMMA_DATA/kern. `--sample N` checks a seeded random sample of about N
files, stratified by collection (the folder a file lies in), for when the whole corpus takes too
long (about 2.2 million lines, some 80 minutes on two free cores). The summary (Markdown) goes
to stdout and to --out, and is rewritten every 100 files.
"""

from __future__ import annotations

import argparse
import collections
import multiprocessing
import random
import re
import signal
import sys
import time
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path

STAGES = ("parse", "valid", "musicxml")
COMMAND_ARGS = ""  # set by main: the arguments this run was started with, for the report


def count_music(score) -> tuple[int, list[int]]:
    """(notes, measures per part) of a music21 score; a chord counts each of its notes.

    Tie continuations are not counted: MusicXML export splits a note whose duration one note
    head cannot show into tied notes, which is the same music. Empty measures at the end of a
    part are not counted: after an overfull last measure music21's export appends one.
    """
    notes = 0
    for element in score.recurse().notes:
        for note in element.notes if element.isChord else [element]:
            tie = note.tie if note.tie is not None else element.tie
            notes += tie is None or tie.type == "start"
    measures = []
    for part in score.parts:
        bars = list(part.getElementsByClass("Measure"))
        while bars and not bars[-1].duration.quarterLength and not bars[-1].recurse().notesAndRests:
            bars.pop()
        measures.append(len(bars))
    return notes, measures


def overfull_measures(score) -> int:
    """Measures longer than their time signature (notes held over early music's pseudo-barlines),
    which music21's MusicXML export splits into more measures."""
    return sum(
        measure.duration.quarterLength > measure.barDuration.quarterLength
        for part in score.parts
        for measure in part.getElementsByClass("Measure")
    )


def check_file(path: str) -> dict:
    """Run every stage on one file; stop at the first failure and say why."""
    from omrgemma.kern.convert import score_to_musicxml, to_score
    from omrgemma.kern.files import read_kern
    from omrgemma.kern.parse import parse
    from omrgemma.kern.validate import validate

    result = {"path": path, "failed": None, "why": "", "errors": [], "first_error": {}}
    try:
        text = read_kern(path)
        doc = parse(text, path)
    except Exception as exc:  # noqa: BLE001 - a corpus report lists every failure
        return {**result, "failed": "parse", "why": f"{type(exc).__name__}: {exc}"}
    errors = [p for p in validate(doc) if p.severity == "error"]
    result["errors"] = sorted({p.code for p in errors})
    for problem in reversed(errors):
        result["first_error"][problem.code] = f"line {problem.line}: {problem.message[:160]}"
    try:
        from music21 import converter

        score = to_score(text, path=path)
        xml = score_to_musicxml(score)
        back = converter.parseData(xml.decode("utf-8"), format="musicxml", forceSource=True)
        before, after = count_music(score), count_music(back)
        if before != after:
            why = f"notes/measures {before[0]}/{before[1]} -> {after[0]}/{after[1]}"
            overfull = overfull_measures(score)
            if overfull and before[0] == after[0]:
                why += f" ({overfull} kern measures longer than their meter, re-barred on export)"
            return {**result, "failed": "musicxml", "why": why, "counts": [before, after]}
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
        result = {"path": path, "failed": "musicxml", "why": f"timeout {timeout:g} s"}
        return {**result, "errors": [], "first_error": {}}
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
                        "first_error": {},
                    }
                )
            if i % 100 == 0:
                print(f"{i}/{len(files)}", file=sys.stderr, flush=True)
                if progress is not None:
                    progress(results)
    return results


def collection(path: str, root: Path) -> str:
    """The folder of a file relative to ROOT (`piano/joplin`, `polish-scores/2-staff`)."""
    folder = Path(path).parent.relative_to(root)
    return root.name if folder == Path(".") else str(folder)


def stratified_sample(files: list[Path], root: Path, size: int, seed: int) -> list[Path]:
    """About `size` files, the same share of every collection (at least one of each)."""
    groups: dict[str, list[Path]] = collections.defaultdict(list)
    for path in files:
        groups[collection(str(path), root)].append(path)
    rng = random.Random(seed)
    chosen = []
    for name in sorted(groups):
        group = groups[name]
        count = min(len(group), max(1, round(size * len(group) / len(files))))
        chosen += rng.sample(group, count)
    return sorted(chosen)


def failure_group(result: dict) -> str:
    """A short class of a round-trip failure, for grouping the list."""
    why = result["why"]
    if "re-barred on export" in why:
        return "music21 re-bars measures longer than their meter (same notes, more measures)"
    if why.startswith("notes/measures"):
        (notes, measures), (notes2, measures2) = result["counts"]
        parts = []
        if notes != notes2:
            parts.append("note count changes")
        if measures != measures2:
            parts.append("measure count changes")
        return " and ".join(parts)
    if why.startswith("timeout"):
        return "timeout"
    if inner := re.search(r"could not read it \((\w+)", why):  # KernError: PATH: ... (Error: ...
        return f"converter21 cannot read it ({inner.group(1)})"
    kind, _, message = why.partition(": ")
    message = re.sub(r"In part \(.*?\), measure \(\d+\): ", "", message)  # one group per kind
    return f"{kind}: {message[:70]}"


def summary(results: list[dict], root: Path, seconds: float, planned: int, note: str = "") -> str:
    total = len(results)
    lines = [
        "# Kern corpus check",
        "",
        f"{total} of {planned} planned files under `{root}` checked"
        f"{' (a partial run)' if total < planned else ''}, {seconds / 60:.1f} min"
        " with 2 worker processes.",
    ]
    lines += [note] if note else []
    lines += [
        f"Command: `nice -n 10 .venv/bin/python benchmarks/kern_corpus.py {COMMAND_ARGS}`",
        "",
    ]
    lines += [
        "Stages: parse (our parser raises nothing), validate (no errors, warnings allowed),",
        "round trip (converter21 reads it, music21 writes MusicXML and reads it back with the same",
        "notes and measures per part).",
        "",
        "| collection | files | parse | validate | round trip |",
        "|---|---:|---:|---:|---:|",
    ]
    by_collection: dict[str, list[dict]] = collections.defaultdict(list)
    for r in results:
        by_collection[collection(r["path"], root)].append(r)

    def row(name: str, group: list[dict]) -> str:
        n = max(len(group), 1)
        parsed = sum(r["failed"] != "parse" for r in group)
        valid = sum(r["failed"] != "parse" and not r["errors"] for r in group)
        converted = sum(r["failed"] is None for r in group)
        cells = [f"{c} ({100 * c / n:.1f} %)" for c in (parsed, valid, converted)]
        return f"| {name} | {len(group)} | " + " | ".join(cells) + " |"

    lines += [row(name, by_collection[name]) for name in sorted(by_collection)]
    lines.append(row("**all**", results))
    codes = collections.Counter(code for r in results for code in r["errors"])
    lines += ["", "## Validation errors (files per code)", ""]
    for code, n in codes.most_common():
        paths = [r for r in results if code in r["errors"]]
        lines.append(f"- `{code}`: {n} files")
        lines += [
            f"  - `{Path(r['path']).relative_to(root)}`: {r['first_error'].get(code, '')}"
            for r in paths
        ]
    if not codes:
        lines.append("- none")
    failures = [r for r in results if r["failed"]]
    groups: dict[str, list[dict]] = collections.defaultdict(list)
    for r in failures:
        groups[failure_group(r)].append(r)
    lines += ["", f"## Round-trip failures ({len(failures)})", ""]
    for name, group in sorted(groups.items(), key=lambda item: -len(item[1])):
        lines.append(f"- **{name}** ({len(group)})")
        lines += [
            f"  - `{Path(r['path']).relative_to(root)}` ({r['failed']}): {r['why']}" for r in group
        ]
    if not failures:
        lines.append("- none")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    from omrgemma.settings import data_dir

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", nargs="?", type=Path, default=data_dir() / "kern")
    parser.add_argument("--limit", type=int, default=0, help="check every Nth file only (0: all)")
    parser.add_argument("--sample", type=int, default=0, help="a stratified sample of N files")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=90)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    global COMMAND_ARGS
    COMMAND_ARGS = " ".join(sys.argv[1:] if argv is None else argv)
    files = sorted(args.root.rglob("*.krn"))
    note = ""
    if args.sample and args.sample < len(files):
        note = (
            f"A seeded random sample (`--sample {args.sample} --seed {args.seed}`), stratified by"
            f" collection, of the {len(files)} files."
        )
        files = stratified_sample(files, args.root, args.sample, args.seed)
    if args.limit:
        files = files[:: max(1, len(files) // args.limit)][: args.limit]
    # a fixed shuffle, so that a run cut short still samples every collection
    random.Random(0).shuffle(files)
    began = time.perf_counter()

    def report(results: list[dict]) -> str:
        text = summary(results, args.root, time.perf_counter() - began, len(files), note)
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(text)
        return text

    results = run(files, workers=args.workers, timeout=args.timeout, progress=report)
    print(report(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())

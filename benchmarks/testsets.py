"""Measure the snippet cutter over the piano corpora and the sizes of the three test sets.

    .venv/bin/python benchmarks/testsets.py [--data DIR] [--seed 0] [--skip-scans] [--max-movements N]

Cutter check, over every movement of every `kern/piano/*` collection (train and test alike), in
both modes (at the edition's system breaks, where marked; and in seeded 1-8-measure chunks):
- valid: `omrgemma.kern.validate` reports no error for the snippet;
- renders: verovio loads it and engraves one page (SVG, in this process);
- notes drawn: the SVG has at least one notehead per non-grace note of the snippet;
- note sums: per movement, the notes over its snippets equal the movement's notes.
Then the sizes of grandstaff-like / camera-like (held-out systems that render) and real-scans
(pairs found, movements skipped and why). Prints a Markdown report on stdout.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

from omrgemma.data import testsets
from omrgemma.data.render import DEFAULT
from omrgemma.data.snippets import CutError, count_break_marks, cut_at_breaks, cut_by_measures
from omrgemma.data.split import kern_relpath
from omrgemma.kern.parse import parse
from omrgemma.kern.validate import validate
from omrgemma.settings import data_dir

NOTEHEAD = re.compile(r'class="note[ "]')  # verovio: class="note" or "note cross" etc.


def note_count(kern: str, *, grace: bool = True) -> int:
    return sum(
        1
        for record in parse(kern).records
        for _, token in record.kern_tokens()
        for note in token.notes
        if note.is_note and (grace or not note.is_grace)
    )


class Tally:
    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.error_codes: Counter[str] = Counter()
        self.examples: dict[str, str] = {}

    def snippet(self, kern: str, toolkit, ident: str) -> None:
        self.counts["snippets"] += 1
        errors = [p for p in validate(kern) if p.severity == "error"]
        self.counts["valid"] += not errors
        for problem in errors:
            self.error_codes[problem.code] += 1
            self.examples.setdefault(problem.code, ident)
        if toolkit.loadData(kern) and toolkit.getPageCount() == 1:
            svg = toolkit.renderToSVG(1)
            self.counts["renders"] += 1
            drawn = len(NOTEHEAD.findall(svg))
            self.counts["notes drawn"] += drawn >= note_count(kern, grace=False)
        else:
            self.examples.setdefault("render", ident)


def cutter_check(data: Path, seed: int, max_movements: int | None) -> str:
    import verovio

    verovio.enableLog(verovio.LOG_OFF)
    toolkit = verovio.toolkit()
    toolkit.setOptions(DEFAULT.verovio())
    movements = sorted((data / "kern" / "piano").glob("*/*.krn"))[:max_movements]
    tallies = {"breaks": Tally(), "measures": Tally()}
    movement_counts: Counter[str] = Counter()
    for path in movements:
        text = path.read_text(encoding="utf-8", errors="replace")
        relpath = kern_relpath(path)
        total = note_count(text)
        movement_counts["movements"] += 1
        modes = {
            "measures": lambda t, r=relpath: cut_by_measures(t, testsets.example_seed(seed, r))
        }
        if count_break_marks(text):
            movement_counts["with marks"] += 1
            modes["breaks"] = cut_at_breaks
        for mode, cut in modes.items():
            try:
                snippets = cut(text)
            except CutError as exc:
                movement_counts[f"{mode}: cut error"] += 1
                print(f"{relpath}: {exc}", file=sys.stderr)
                continue
            movement_counts[f"{mode}: note sums equal"] += (
                sum(note_count(s.kern) for s in snippets) == total
            )
            movement_counts[f"{mode}: cut"] += 1
            for snippet in snippets:
                tallies[mode].snippet(snippet.kern, toolkit, f"{relpath}#{snippet.index}")
    lines = [
        f"Movements: {movement_counts['movements']} (all of kern/piano/*), "
        f"{movement_counts['with marks']} with system-break marks.",
        "",
        "| mode | movements cut | note sums equal | snippets | valid | renders | notes drawn |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for mode, tally in tallies.items():
        c = tally.counts
        n = max(c["snippets"], 1)
        lines.append(
            f"| {mode} | {movement_counts[f'{mode}: cut']} | "
            f"{movement_counts[f'{mode}: note sums equal']} | {c['snippets']} | "
            f"{c['valid']} ({100 * c['valid'] / n:.2f} %) | {c['renders']} ({100 * c['renders'] / n:.2f} %) | "
            f"{c['notes drawn']} ({100 * c['notes drawn'] / n:.2f} %) |"
        )
    for mode, tally in tallies.items():
        if tally.error_codes:
            lines.append(
                f"\nValidation errors ({mode}): "
                + ", ".join(
                    f"{code} {count} (e.g. {tally.examples[code]})"
                    for code, count in tally.error_codes.most_common()
                )
            )
    return "\n".join(lines)


def set_sizes(data: Path, seed: int, skip_scans: bool) -> str:
    import verovio

    verovio.enableLog(verovio.LOG_OFF)
    toolkit = verovio.toolkit()
    toolkit.setOptions(DEFAULT.verovio())
    report = testsets.BuildReport()
    systems = testsets.grandstaff_systems(data, seed=seed, report=report)
    renders = sum(bool(toolkit.loadData(s.kern)) and toolkit.getPageCount() == 1 for s in systems)
    by_collection = Counter(s.collection for s in systems)
    lines = [
        f"grandstaff-like: {renders} systems that render, of {len(systems)} cut from "
        f"{report.movements} held-out piano movements (seed {seed}; "
        f"{len(report.cut_failures)} movements the cutter rejected)",
        "  by collection: " + ", ".join(f"{c} {n}" for c, n in sorted(by_collection.items())),
        f"camera-like: {renders} systems (the same, augmented)",
    ]
    if skip_scans:
        return "\n".join(lines)
    scan_report = testsets.BuildReport()
    started = time.perf_counter()
    examples = Counter(e.collection for e in testsets.real_scans(data, report=scan_report))
    lines.append(
        f"real-scans: {sum(examples.values())} systems from "
        f"{scan_report.movements - len(scan_report.skipped) - len(scan_report.cut_failures)} of "
        f"{scan_report.movements} held-out scanned movements ({time.perf_counter() - started:.0f} s)"
    )
    lines.append("  by collection: " + ", ".join(f"{c} {n}" for c, n in sorted(examples.items())))
    for movement, reason in scan_report.skipped:
        lines.append(f"  skipped {movement}: {reason}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=data_dir())
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-scans", action="store_true")
    parser.add_argument("--skip-cutter", action="store_true")
    parser.add_argument("--max-movements", type=int, default=None)
    args = parser.parse_args()
    np.seterr(all="ignore")
    started = time.perf_counter()
    if not args.skip_cutter:
        print("## Cutter over the piano corpora\n")
        print(cutter_check(args.data, args.seed, args.max_movements))
    print("\n## Test-set sizes\n")
    print(set_sizes(args.data, args.seed, args.skip_scans))
    print(f"\n({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()

"""How often does the barline count match the reference (`omrgemma.pipeline.barlines`)?

    .venv/bin/python benchmarks/barlines.py \\
        [--sets real-scans-dev:200,grandstaff-like-dev:100,camera-like-dev:64] [--data DIR]

For the first N systems of each set (dev sets: training movements, never the test sets) the
system's staves are found as the reader finds them and its measures counted by its barlines;
the count is compared with the reference kern's measures. Prints, as Markdown, how many counts
are right, unknown (no count: the reading is not bounded), over (a looser bound) and short (a
bound that cuts the reading), and the seconds the counting took.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from pathlib import Path

OUTCOMES = ("right", "unknown", "over", "short")


def outcome(count: int | None, reference: int) -> str:
    if count is None:
        return "unknown"
    return "right" if count == reference else "over" if count > reference else "short"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sets", default="real-scans-dev:200,grandstaff-like-dev:100,camera-like-dev:64"
    )
    parser.add_argument("--data", default=None)
    args = parser.parse_args()

    from omrgemma.data import testsets
    from omrgemma.kern.parse import parse
    from omrgemma.pipeline.barlines import measure_count
    from omrgemma.pipeline.staves import find_system_staves
    from omrgemma.settings import data_dir

    data = Path(args.data) if args.data else data_dir()
    print("| set | systems | " + " | ".join(OUTCOMES) + " | s |")
    print("|---|---:|" + "---:|" * len(OUTCOMES) + "---:|")
    for spec in args.sets.split(","):
        name, _, limit = spec.partition(":")
        tally: Counter[str] = Counter()
        seconds = 0.0
        for example in testsets.build(name, data, limit=int(limit or 100)):
            start = time.perf_counter()
            staves = find_system_staves(example.image)
            count = measure_count(example.image, staves) if staves else None
            seconds += time.perf_counter() - start
            tally[outcome(count, len(parse(example.kern).measures))] += 1
        cells = " | ".join(str(tally[o]) for o in OUTCOMES)
        print(f"| {name} | {sum(tally.values())} | {cells} | {seconds:.0f} |", flush=True)


if __name__ == "__main__":
    main()

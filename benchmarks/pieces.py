"""Do the barline count and reading long systems in pieces pay (`omrgemma.pipeline.barlines`,
`omrgemma.measure_budget`, `omrgemma.pipeline.chunks`)?

    .venv/bin/python benchmarks/pieces.py --model models/omrgemma-small \\
        [--sets real-scans-dev:200,grandstaff-like-dev:64,camera-like-dev:64] \\
        [--modes free,bound,bound+4] [--beam K] [--data DIR]

Reads the first N systems of each set (dev sets: training movements, never the test sets)
staff by staff in each mode and prints, as Markdown, system SER, note F1 (precision / recall),
valid kern and the ratio of written to reference symbols:

- `free`: each staff read whole and unbounded (the reader before session 10);
- `bound`: each staff read whole, with at most the measures its system's barlines show;
- `bound+N`: a system of more than N measures cut at its barlines into pieces of at most N,
  each piece bounded by its own count;
- `+N`: pieces without the bound, for comparison.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def reader_for(reader, mode: str):
    """Set `reader` (a StaffReader) to `mode`; returns it."""
    bound, _, pieces = mode.partition("+")
    reader.count_measures = bound == "bound"
    reader.piece_measures = int(pieces) if pieces else None
    return reader


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument(
        "--sets", default="real-scans-dev:200,grandstaff-like-dev:64,camera-like-dev:64"
    )
    parser.add_argument("--modes", default="free,bound,bound+4")
    parser.add_argument("--data", default=None)
    parser.add_argument(
        "--beam", type=int, default=None, help="beam width (1: greedy; default: the model's)"
    )
    args = parser.parse_args()

    from omrgemma import metrics
    from omrgemma.data import testsets
    from omrgemma.evaluate import load_predictor, score_example
    from omrgemma.settings import data_dir

    data = Path(args.data) if args.data else data_dir()
    reader = load_predictor(args.model, data=data, beam=args.beam)
    print(f"model `{args.model}`, beam {args.beam}\n")
    print(
        "| set | systems | mode | SER % | note F1 (P / R) | valid % | symbols written / reference | s |"
    )
    print("|---|---:|---|---:|---|---:|---:|---:|")
    for spec in args.sets.split(","):
        name, _, count = spec.partition(":")
        examples = list(testsets.build(name, data, limit=int(count or 100)))
        for mode in args.modes.split(","):
            reader_for(reader, mode)
            edits = notes = None
            valid = written = reference = 0
            began = time.perf_counter()
            for start in range(0, len(examples), 8):
                batch = examples[start : start + 8]
                for example, kern in zip(
                    batch, reader.predict([e.image for e in batch]), strict=True
                ):
                    result = score_example(example, kern, music=True)
                    edits = result.counts if edits is None else edits + result.counts
                    notes = result.notes if notes is None else notes + result.notes
                    valid += result.valid
                    written += len(metrics.symbols(kern))
                    reference += len(metrics.symbols(example.kern))
            seconds = time.perf_counter() - began
            print(f"| {name} | {len(examples)} | {mode} | {edits.ser:.1f} | {notes.f1:.3f} "
                  f"({notes.precision:.3f} / {notes.recall:.3f}) | {100 * valid / len(examples):.0f} "
                  f"| {written / reference:.2f} | {seconds:.0f} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()

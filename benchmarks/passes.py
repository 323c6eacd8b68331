"""Does reading each staff several times (`--passes`) pay, and what does it cost?

    .venv/bin/python benchmarks/passes.py --model models/omrgemma-small [--systems 100]
        [--widths 1.0,0.95,1.05] [--data DIR]

Staves of *training* movements (never the held-out ones the test sets are made of), so that
choosing the pass widths here does not tune on the test sets: `--systems` single-staff
snippets of 1-4 measures and `--systems`/2 piano systems of 1-8 measures, cut by the test
sets' cutter with another seed, engraved as the test sets are and cut into staves as
`transcribe` cuts them. Every staff is read once at each width of `--widths`; the script then
prints, as Markdown, the SER (%) of the first pass alone and of the surest of the first k
passes (highest mean token log-probability, as `omrgemma.pipeline.passes` picks) for every k,
each set on its own, with the decoding time relative to one pass.

The model has seen other cuts of these movements in training, so its SER here is lower than
on the test sets; the comparison between pass counts is what this measures.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

SEED = 7  # not the test sets' seed (0): other cuts of the movements


def staves(data, name: str, count: int) -> tuple[list[np.ndarray], list[str]]:
    """(staff images, their kern) from `count` snippets of training movements."""
    from omrgemma.data import split, testsets
    from omrgemma.data.snippets import CutError, cut_by_measures
    from omrgemma.data.testsets import example_seed
    from omrgemma.kern.staves import split_staves as staff_kerns
    from omrgemma.pipeline.staves import split_staves
    from omrgemma.train_run import DATASETS

    collections = list(DATASETS["single" if name == "single-staff" else "piano"])
    measures = testsets.SINGLE_STAFF_MEASURES if name == "single-staff" else testsets.MEASURES
    files = split.train_files(data, collections)
    rng = np.random.default_rng(SEED)
    snippets: list[str] = []
    for index in rng.permutation(len(files)):
        path = files[index]
        try:
            cut = cut_by_measures(path.read_text(encoding="utf-8", errors="replace"),
                                  example_seed(SEED, path.name), measures=measures)  # fmt: skip
        except CutError:
            continue
        cut = [s for s in cut if s.measures >= 1]
        if name == "single-staff":  # one staff: one **kern spine, as the test set keeps
            cut = [s for s in cut if s.kern.split("\n", 1)[0] == "**kern"]
        if cut:
            snippets.append(cut[int(rng.integers(len(cut)))].kern)
        if len(snippets) == count:
            break
    refs = [testsets.SystemRef(id=str(i), collection="", kern=k) for i, k in enumerate(snippets)]
    images, kerns = [], []
    for example in testsets._examples(refs, testsets.BuildReport(), testsets.DEFAULT, 1):
        parts = split_staves(example.image)
        texts = [example.kern] if len(parts) == 1 else staff_kerns(example.kern)
        if len(parts) == len(texts):
            images += parts
            kerns += texts
    return images, kerns


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--systems", type=int, default=100)
    parser.add_argument("--widths", default="1.0,0.95,1.05")
    parser.add_argument("--data", default=None)
    args = parser.parse_args()

    from omrgemma.metrics import error_rates
    from omrgemma.pipeline.passes import mean_logprob, scaled_width
    from omrgemma.recognizer import load_recognizer
    from omrgemma.settings import data_dir

    data = data_dir() if args.data is None else args.data
    widths = [float(w) for w in args.widths.split(",")]
    model = load_recognizer(args.model)
    print(f"# Reading each staff several times: {args.model}\n")
    print(f"Widths in order: {', '.join(f'{w:g}' for w in widths)}.\n")
    print("| staves | n | passes | SER % | decoding time x |\n|---|---:|---:|---:|---:|")
    for name, count in (("single-staff", args.systems), ("piano", max(1, args.systems // 2))):
        images, refs = staves(data, name, count)
        model.recognize(images[:1])  # compile outside the timings
        reads, seconds = [], []
        for width in widths:
            began = time.perf_counter()
            reads.append(model.recognize([scaled_width(image, width) for image in images]))
            seconds.append(time.perf_counter() - began)
        for k in range(1, len(widths) + 1):
            picked = [max((reads[p][i] for p in range(k)), key=mean_logprob).kern
                      for i in range(len(images))]  # fmt: skip
            ser = error_rates(picked, refs).ser
            ratio = sum(seconds[:k]) / seconds[0]
            print(f"| {name} | {len(images)} | {k} | {ser:.1f} | {ratio:.2f} |")


if __name__ == "__main__":
    main()

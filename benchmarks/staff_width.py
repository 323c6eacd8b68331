"""How wide are the staves a staff-level model reads, and how does its error grow with width?

    .venv/bin/python benchmarks/staff_width.py --model models/omrgemma-small [--systems 30]
        [--measures 1-4] [--data DIR]

A 64x512 staff input holds a staff of width/height 8 at full height; a wider staff is shrunk
to fit. This prints, as Markdown:
- width/height percentiles of training staves (`--measures` per snippet, cut from training
  piano movements, rendered alone at the training scales) and of the staves cut from the first
  `--systems` GrandStaff-like systems (as `omrgemma evaluate` cuts them);
- the model's SER on those GrandStaff-like staves, by width/height band, once for the staves as
  cut from the system and once for the same staff's kern rendered alone (what training sees).
"""

from __future__ import annotations

import argparse

import numpy as np

BANDS = ((0, 5), (5, 8), (8, 11), (11, 1000))


def training_ratios(data, measures: tuple[int, int], count: int, seed: int = 0) -> list[float]:
    from omrgemma.data import split
    from omrgemma.data.kern_examples import build_snippet_pool, trim_white
    from omrgemma.data.render import render_system
    from omrgemma.train_run import DATASETS

    rng = np.random.default_rng(seed)
    files = split.train_files(data, list(DATASETS["piano"]))
    files = [files[i] for i in rng.choice(len(files), min(40, len(files)), replace=False)]
    pool = build_snippet_pool(files, measures=measures, cuts=1, seed=seed, staves=True)
    ratios = []
    for i in rng.choice(len(pool), min(count, len(pool)), replace=False):
        image = trim_white(render_system(pool[i], scale=int(rng.integers(35, 71))))
        ratios.append(image.shape[1] / image.shape[0])
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--systems", type=int, default=30)
    parser.add_argument("--measures", default="1-4", help="training snippet measures, LOW-HIGH")
    parser.add_argument("--data", default=None)
    args = parser.parse_args()

    from omrgemma.data import testsets
    from omrgemma.data.kern_examples import trim_white
    from omrgemma.data.render import render_system
    from omrgemma.kern.staves import split_staves as staff_kerns
    from omrgemma.metrics import error_rates
    from omrgemma.pipeline.staves import split_staves
    from omrgemma.recognizer import load_recognizer
    from omrgemma.settings import data_dir

    data = data_dir() if args.data is None else args.data
    low, _, high = args.measures.partition("-")
    train = training_ratios(data, (int(low), int(high or low)), 80)
    cut, alone, refs = [], [], []
    for example in testsets.build("grandstaff-like", data, limit=args.systems):
        images, kerns = split_staves(example.image), staff_kerns(example.kern)
        if len(images) == len(kerns):
            cut += images
            alone += [trim_white(render_system(k)) for k in kerns]
            refs += kerns
    ratios = np.array([image.shape[1] / image.shape[0] for image in cut])
    model = load_recognizer(args.model)
    read_cut, read_alone = model.predict(cut), model.predict(alone)

    pct = (10, 50, 90)
    print(f"# Staff width and error: {args.model}\n")
    print("| staves | n | width/height p10 / p50 / p90 |\n|---|---:|---|")
    for name, values in (
        (f"training, {args.measures} measures", train),
        ("grandstaff-like", ratios),
    ):
        p = np.percentile(values, pct)
        print(f"| {name} | {len(values)} | {p[0]:.1f} / {p[1]:.1f} / {p[2]:.1f} |")
    print("\n| width/height | staves | SER % cut from the system | SER % same kern alone |")
    print("|---|---:|---:|---:|")
    for lo, hi in BANDS:
        rows = [i for i, r in enumerate(ratios) if lo <= r < hi]
        if rows:
            ref = [refs[i] for i in rows]
            a = error_rates([read_cut[i] for i in rows], ref).ser
            b = error_rates([read_alone[i] for i in rows], ref).ser
            print(f"| {lo}-{hi if hi < 1000 else ''} | {len(rows)} | {a:.1f} | {b:.1f} |")
    total_cut, total_alone = error_rates(read_cut, refs).ser, error_rates(read_alone, refs).ser
    print(f"| all | {len(refs)} | {total_cut:.1f} | {total_alone:.1f} |")


if __name__ == "__main__":
    main()

"""Does making a system's staves agree on the meter pay (`omrgemma.pipeline.meter`)?

    .venv/bin/python benchmarks/meter.py --model models/omrgemma-small [--systems 60]
        [--set training|grandstaff-like] [--data DIR]

`--set training` (the default): `--systems` piano systems of 1-8 measures cut from as many
*training* movements (`build_snippet_pool`, which refuses held-out ones) and engraved as `grandstaff-like` is, so the
rule is checked on music the test sets do not hold. `--set grandstaff-like`: the first
`--systems` systems of that test set. Each system is read staff by staff twice, with the
meter agreement off and on (the same first reading; only the re-read staves differ), and the
script prints, as Markdown: how many systems had staves disagreeing on the meter, how many
staves were re-read, system SER and note F1 (repaired kern) with and without, the SER of the
re-read staves alone before and after, and the decoding time with agreement relative to without.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

SEED = 7  # which training movements, and where they are cut


def training_systems(data, count: int):
    """`count` engraved piano systems (testsets.Example) from `count` training movements."""
    from omrgemma.data import split, testsets
    from omrgemma.data.kern_examples import build_snippet_pool
    from omrgemma.data.render import SafeRenderer
    from omrgemma.train_run import DATASETS

    files = split.train_files(data, list(DATASETS["piano"]))
    rng = np.random.default_rng(SEED)
    chosen = [files[i] for i in rng.choice(len(files), min(count, len(files)), replace=False)]
    pool = build_snippet_pool(chosen, measures=testsets.MEASURES, cuts=1, seed=SEED)
    kerns = [pool[i] for i in rng.choice(len(pool), min(count, len(pool)), replace=False)]
    with SafeRenderer(testsets.DEFAULT, workers=1) as renderer:
        images = renderer.render_all(kerns)
    return [testsets.Example(id=str(i), collection="", image=image, kern=kern)
            for i, (kern, image) in enumerate(zip(kerns, images, strict=True))
            if image is not None]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--systems", type=int, default=60)
    parser.add_argument("--set", dest="set_name", default="training")
    parser.add_argument("--data", default=None)
    args = parser.parse_args()

    from omrgemma.data import testsets
    from omrgemma.evaluate import score_example
    from omrgemma.kern.staves import split_staves as staff_kerns
    from omrgemma.metrics import EditCounts, NoteCounts, error_rates
    from omrgemma.pipeline.meter import meter_starts
    from omrgemma.pipeline.staves import StaffReader, split_staves
    from omrgemma.recognizer import load_recognizer
    from omrgemma.settings import data_dir

    data = data_dir() if args.data is None else args.data
    if args.set_name == "training":
        examples = training_systems(data, args.systems)
    else:
        examples = list(testsets.build(args.set_name, data, limit=args.systems))
    model = load_recognizer(args.model)
    model.recognize([split_staves(examples[0].image)[0]])  # compile outside the timings
    rows = {}
    for agree in (False, True):
        reader = StaffReader(inner=model, image_size=(1024, 1024), agree_meter=agree)
        began = time.perf_counter()
        results = reader.recognize([e.image for e in examples])
        rows[agree] = (results, time.perf_counter() - began)
    plain, agreed = rows[False][0], rows[True][0]
    disagreeing = sum(bool(meter_starts(r.staves)) for r in plain if r.staves)
    before, after, refs = [], [], []
    for example, a, b in zip(examples, plain, agreed, strict=True):
        kerns = staff_kerns(example.kern)
        for k, (x, y) in enumerate(zip(a.staves, b.staves, strict=False)):
            if x.kern != y.kern and len(kerns) == len(a.staves):
                before.append(x.kern)
                after.append(y.kern)
                refs.append(kerns[k])
    print(f"# Staves agreeing on the meter: {args.model}, {args.set_name}\n")
    print(f"{len(examples)} systems; staves disagreed on the meter in {disagreeing}; "
          f"{len(refs)} staves re-read.\n")  # fmt: skip
    print("| meter | system SER % | note F1 | re-read staves SER % | time x |")
    print("|---|---:|---:|---:|---:|")
    for agree, label, staves in ((False, "per staff", before), (True, "agreed", after)):
        results, seconds = rows[agree]
        scored = [score_example(e, r.kern, music=True)
                  for e, r in zip(examples, results, strict=True)]  # fmt: skip
        ser = sum((s.counts for s in scored), start=EditCounts()).ser
        notes = sum((s.notes for s in scored if s.notes is not None), start=NoteCounts())
        restaff = error_rates(staves, refs).ser if refs else float("nan")
        ratio = seconds / rows[False][1]
        print(f"| {label} | {ser:.1f} | {notes.f1:.3f} | {restaff:.1f} | {ratio:.2f} |")


if __name__ == "__main__":
    main()

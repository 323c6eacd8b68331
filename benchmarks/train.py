"""Training throughput on this machine: examples rendered per second and samples trained per second.

    nice .venv/bin/python benchmarks/train.py [--examples 60] [--steps 8] [--out benchmarks/results/train.md]
    nice .venv/bin/python benchmarks/train.py --staff [--steps 8]   # SMALL vs SMALL_STAFF only

Data: `KernExamples` over a snippet pool of single-staff training movements (1-2 measures, the
shipped model's setting), in this process: verovio + resvg + augmentation + square fit.
Training: one jitted AdamW step of the shipped preset (`omrgemma.train_run.SMALL`) and of
`TINY`, batch 16, text length 64, on random images and tokens; compile time reported apart, then
the median over `--steps` steps. Numbers depend on what else runs on the machine: the load
average is printed beside them. `--staff` compares the square SMALL (192 x 192, 144 image tokens)
with SMALL_STAFF (64 x 512, 128 tokens) at the same batch, measured twice in turn (A B A B) so a
change in background load hits both.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np


def bench_data(n: int) -> dict[str, float]:
    from omrgemma.data.kern_examples import ExampleOptions, KernExamples, build_snippet_pool
    from omrgemma.data.split import train_files
    from omrgemma.settings import data_dir
    from omrgemma.train_run import DATASETS, SMALL

    files = train_files(data_dir(), list(DATASETS["single"]))[::20]
    pool = build_snippet_pool(files, measures=(1, 2), cuts=1, seed=0)
    maker = KernExamples(pool=tuple(pool), options=ExampleOptions(image_size=SMALL.image_size))
    t0 = time.perf_counter()
    made = sum(maker(np.random.default_rng(i)) is not None for i in range(n))
    seconds = time.perf_counter() - t0
    return {"examples": made, "seconds": seconds, "examples_per_s": made / seconds}


def bench_train(config, steps: int, batch: int = 16, text_len: int = 64) -> dict[str, float]:
    import jax

    from omrgemma.nn.paligemma import count_params
    from omrgemma.train import TrainConfig, _fresh_state, make_optimizer, make_train_step
    from omrgemma.train_run import model_fns

    fns = model_fns(config)
    cfg = TrainConfig(batch_size=batch, warmup_steps=1)
    state = _fresh_state(fns, cfg, None)
    tx = make_optimizer(cfg, state["params"])
    step = jax.jit(make_train_step(fns, tx, cfg), donate_argnums=(0,))
    rng = np.random.default_rng(0)
    data = {
        "images": rng.integers(0, 256, (batch, *config.image_hw), dtype=np.uint8),
        "tokens": rng.integers(4, config.vocab_size, (batch, text_len + 1), dtype=np.int32),
        "mask_ar": np.ones((batch, text_len + 1), np.int32),
        "mask_loss": np.ones((batch, text_len + 1), np.int32),
        "input_mask": np.ones((batch, text_len + 1), np.int32),
    }
    data["mask_ar"][:, :2] = 0
    t0 = time.perf_counter()
    state, metrics = step(state, data)
    jax.block_until_ready(metrics)
    compile_s = time.perf_counter() - t0
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        state, metrics = step(state, data)
        jax.block_until_ready(metrics)
        times.append(time.perf_counter() - t0)
    median = statistics.median(times)
    return {
        "params_m": count_params(state["params"]) / 1e6,
        "image_tokens": config.num_image_tokens,
        "compile_s": compile_s,
        "step_s": median,
        "samples_per_s": batch / median,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=60)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--staff", action="store_true", help="only SMALL vs SMALL_STAFF")
    args = parser.parse_args()
    if args.staff:
        compare_staff(args.steps)
        return

    from omrgemma.config import TINY
    from omrgemma.train_run import SMALL

    load = os.getloadavg()[0]
    data = bench_data(args.examples)
    small = bench_train(SMALL, args.steps)
    tiny = bench_train(TINY, args.steps)
    lines = [
        "# Training throughput (CPU)",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
        f"load average at start {load:.1f}. Command: `nice .venv/bin/python benchmarks/train.py`.",
        "",
        "| what | result |",
        "|---|---|",
        f"| data: render + augment + fit, one process | {data['examples_per_s']:.1f} examples/s "
        f"({data['examples']} in {data['seconds']:.1f} s) |",
    ]
    for name, r in (("omrgemma-small", small), ("TINY", tiny)):
        lines.append(
            f"| train step {name} ({r['params_m']:.2f} M params, {r['image_tokens']} image tokens, "
            f"batch 16, text 64) | {r['samples_per_s']:.2f} samples/s ({r['step_s']:.2f} s/step; "
            f"compile {r['compile_s']:.0f} s) |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


def compare_staff(steps: int) -> None:
    from omrgemma.train_run import SMALL, SMALL_STAFF

    load = os.getloadavg()[0]
    runs: dict[str, list[dict[str, float]]] = {SMALL.name: [], SMALL_STAFF.name: []}
    for _ in range(2):
        for config in (SMALL, SMALL_STAFF):
            runs[config.name].append(bench_train(config, steps))
    rate = {name: statistics.median(r["samples_per_s"] for r in rs) for name, rs in runs.items()}
    for config in (SMALL, SMALL_STAFF):
        r = runs[config.name]
        h, w = config.image_hw
        each = ", ".join(f"{x['samples_per_s']:.2f}" for x in r)
        print(
            f"{config.name}: {h}x{w}, {config.num_image_tokens} image tokens, batch 16, text 64: "
            f"{rate[config.name]:.2f} samples/s (runs {each}; compile {r[0]['compile_s']:.0f} s)"
        )
    print(
        f"ratio staff / square: {rate[SMALL_STAFF.name] / rate[SMALL.name]:.3f} "
        f"(load average at start {load:.1f}, now {os.getloadavg()[0]:.1f})"
    )


if __name__ == "__main__":
    main()

"""Trainable parameters and optimizer-state bytes of LoRA vs full fine-tuning, official presets.

Shapes only: the parameters, the LoRA factors and the optimizer state (`omrgemma.train.
make_optimizer`, AdamW) come from `jax.eval_shape`, so nothing is loaded or allocated. Weights are
float32, as `omrgemma train --init-from` trains them. `--compile` also compiles one train step
(batch 1, text 64) for the CPU and prints XLA's memory analysis: argument and temporary bytes.

    nice .venv/bin/python benchmarks/lora_memory.py [--rank 16] [--preset paligemma2-3b-224]
        [--compile] [--append benchmarks/results/train.md]
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np

from omrgemma import lora
from omrgemma.config import PRESETS
from omrgemma.nn.layers import flatten_dict
from omrgemma.train import TrainConfig, _fresh_state, make_optimizer, make_train_step
from omrgemma.train_run import model_fns

GiB = 2**30


def count(tree) -> int:
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


def nbytes(tree) -> int:
    return sum(int(np.prod(x.shape)) * jnp.dtype(x.dtype).itemsize for x in jax.tree.leaves(tree))


def abstract_state(config, settings: lora.LoraSettings):
    """(model fns, train config, abstract state) of full fine-tuning (rank 0) or LoRA."""
    fns, cfg = model_fns(config), TrainConfig()
    if settings.enabled:
        fns = lora.wrap_model_fns(fns, settings)
        cfg = dataclasses.replace(cfg, freeze=settings.frozen_pattern)
    return fns, cfg, jax.eval_shape(lambda: _fresh_state(fns, cfg, None))


def figures(config, settings: lora.LoraSettings) -> dict[str, float]:
    _, cfg, state = abstract_state(config, settings)
    params = state["params"]
    trainable = params["lora"] if settings.enabled else params
    out = {
        "params": count(params["base"] if settings.enabled else params),
        "trainable": count(trainable),
        "param_bytes": nbytes(params),
        "opt_bytes": nbytes(state["opt_state"]),
    }
    if settings.enabled:
        paths = lora.adapted_paths(params["base"], settings)
        base = flatten_dict(params["base"])
        out["adapted"] = sum(int(np.prod(base[p].shape)) for p in paths)
    return out


def compiled_memory(config, settings: lora.LoraSettings, text: int = 64) -> dict[str, float]:
    """XLA's memory analysis of one jitted train step (donated state) for the CPU backend."""
    fns, cfg, state = abstract_state(config, settings)
    tx = make_optimizer(cfg, state["params"])
    h, w = config.image_hw
    spec = jax.ShapeDtypeStruct
    batch = {
        "images": spec((1, h, w), jnp.uint8),
        **{k: spec((1, text + 1), jnp.int32) for k in ("tokens", "mask_ar", "mask_loss")},
        "input_mask": spec((1, text + 1), jnp.int32),
    }
    t0 = time.monotonic()
    step = jax.jit(make_train_step(fns, tx, cfg), donate_argnums=(0,))
    analysis = step.lower(state, batch).compile().memory_analysis()
    return {
        "argument": analysis.argument_size_in_bytes,
        "temp": analysis.temp_size_in_bytes,
        "compile_s": time.monotonic() - t0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--preset", default="paligemma2-3b-224", choices=sorted(PRESETS))
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--append", default=None, help="Markdown file to append the section to.")
    args = parser.parse_args()

    config = dataclasses.replace(
        PRESETS[args.preset], param_dtype="float32", compute_dtype="float32"
    )
    settings = lora.LoraSettings(rank=args.rank)
    full, low = figures(config, lora.LoraSettings()), figures(config, settings)
    lines = [
        "",
        f"## LoRA vs full fine-tuning: memory of `{args.preset}` (shapes only)",
        "",
        "Command: `nice .venv/bin/python benchmarks/lora_memory.py"
        + (" --compile" if args.compile else "")
        + f" --rank {args.rank} --preset {args.preset}`. Counted from `jax.eval_shape` of the "
        "training state (float32 weights, AdamW of `make_optimizer`); no weights loaded.",
        "",
        f"| | full fine-tuning | LoRA rank {args.rank}, alpha {settings.alpha:g} |",
        "|---|---:|---:|",
        f"| trainable parameters | {full['trainable']:,} | {low['trainable']:,} "
        f"({low['trainable'] / full['trainable']:.2%}) |",
        f"| optimizer state (Adam moments) | {full['opt_bytes'] / GiB:.2f} GiB | "
        f"{low['opt_bytes'] / GiB:.3f} GiB |",
        f"| parameters in the training state | {full['param_bytes'] / GiB:.2f} GiB | "
        f"{low['param_bytes'] / GiB:.2f} GiB (base + factors) |",
    ]
    if args.compile:
        cf, cl = compiled_memory(config, lora.LoraSettings()), compiled_memory(config, settings)
        lines += [
            f"| one train step, XLA CPU: arguments (state + batch) | {cf['argument'] / GiB:.2f} "
            f"GiB | {cl['argument'] / GiB:.2f} GiB |",
            f"| one train step, XLA CPU: temporaries (batch 1, text 64) | {cf['temp'] / GiB:.2f} "
            f"GiB | {cl['temp'] / GiB:.2f} GiB |",
            f"| one train step, XLA CPU: arguments + temporaries | "
            f"{(cf['argument'] + cf['temp']) / GiB:.2f} GiB | "
            f"{(cl['argument'] + cl['temp']) / GiB:.2f} GiB |",
        ]
    lines += [
        "",
        f"LoRA adapts the decoder's attention and MLP weights ({low['adapted'] / 1e6:,.0f} M of "
        f"{low['params'] / 1e6:,.0f} M parameters; k/v and gate/up halves get their own factors). "
        "The logits are computed on merged weights, so each step holds a float32 merged copy of "
        f"the adapted weights ({low['adapted'] * 4 / GiB:.2f} GiB) and, in the backward pass, "
        "their gradient in its temporaries: LoRA saves the optimizer state and the base's "
        "gradients, not that copy (applying A and B inside the layers would).",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.append:
        with open(args.append, "a") as f:
            f.write(text)


if __name__ == "__main__":
    main()

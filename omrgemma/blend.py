"""Weight-space blending of two fine-tunings of one model (a "model soup", WiSE-FT).

Two models trained from the same weights can be averaged parameter by parameter:
`(1 - weight) * a + weight * b`. Wortsman et al. (2022, "Robust fine-tuning of zero-shot
models") found that a blend of a model and its further fine-tuning keeps much of what the
fine-tuning gained on its own data and loses less on data unlike it; here, the weights before
and after another stage of training on rendered staves, measured on real scans.

`blend_params(a, b, weight)` mixes two parameter trees of the same layout (anything else is a
`CheckpointError` naming the first difference); `blend_model_dirs(a, b, out, weight=...)` does it
for two model directories with the same config and tokenizer and writes a third.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from omrgemma.checkpoint import load_model_dir, save_model_dir
from omrgemma.errors import CheckpointError, UsageError
from omrgemma.nn.layers import Params, flatten_dict, unflatten_dict


def blend_params(a: Params, b: Params, weight: float) -> Params:
    """(1 - weight) * a + weight * b, leaf by leaf, in float32 (the result float32 too)."""
    if not 0.0 <= weight <= 1.0:
        raise UsageError(f"blend weight {weight} is outside 0..1")
    left, right = flatten_dict(a), flatten_dict(b)
    if missing := sorted(left.keys() ^ right.keys()):
        raise CheckpointError(f"the models' parameters differ: {missing[0]} is in only one")
    mixed = {}
    for name, x in left.items():
        x, y = np.asarray(x, np.float32), np.asarray(right[name], np.float32)
        if x.shape != y.shape:
            raise CheckpointError(
                f"{name} has shape {x.shape} in one model, {y.shape} in the other"
            )
        mixed[name] = (1.0 - weight) * x + weight * y
    return unflatten_dict(mixed)


def blend_model_dirs(
    a: str | Path,
    b: str | Path,
    out: str | Path,
    *,
    weight: float,
    card: str | None = None,
    force: bool = False,
) -> Path:
    """Write `out`: the blend of model directories `a` and `b` (weight on `b`), with their
    config, their tokenizer and `card` (or a note of what was blended)."""
    import jax
    import jax.numpy as jnp

    first, second = load_model_dir(a), load_model_dir(b)
    if first.config != second.config:
        raise CheckpointError("the two models' configs differ; only one model's stages blend",
                              path=Path(b) / "config.json")  # fmt: skip
    tokenizers = [
        m.tokenizer_path.read_bytes() if m.tokenizer_path else b"" for m in (first, second)
    ]
    if tokenizers[0] != tokenizers[1]:
        raise CheckpointError("the two models' tokenizers differ", path=Path(b) / "tokenizer.model")
    dtype = jnp.dtype(first.config.param_dtype)
    params = jax.tree.map(
        lambda x: x.astype(dtype), blend_params(first.params, second.params, weight)
    )
    note = f"# blend\n\n{1 - weight:g} x `{a}` + {weight:g} x `{b}` (`omrgemma/blend.py`).\n"
    return save_model_dir(
        out, params, first.config, tokenizer=first.tokenizer_path, card=card or note, force=force
    )

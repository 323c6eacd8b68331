"""int8 weight-only quantisation of PaliGemma params (big_vision layout).

Each big matrix becomes int8 values plus one float32 scale per output channel (symmetric:
w ~= q * scale, q in [-127, 127], scale = max|w| / 127 over the contracted axes). Activations
stay float32. The weights live in memory as int8 (a quarter of float32) and are dequantised
inside the jitted forward (`q.astype(f32) * scale`): `QTensor.astype` makes the model's own
`w.astype(compute_dtype)` do it one layer at a time (see `for_forward`); `dequantize` turns a
whole tree back to floats.

Which axes are contracted (reduced over for the scale) is one declarative table keyed by the
param path; negative axes make it work for layer-stacked ([L, ...]) and unstacked kernels alike.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

PyTree = Any

# (path regex, contracted axes). Paths are "/"-joined dict keys, e.g. "llm/layers/mlp/linear".
LLM_RULES: tuple[tuple[str, tuple[int, ...]], ...] = (
    (r"llm/layers/attn/q_einsum/w$", (-2,)),  # [L, N, D, H]: contracts D
    (r"llm/layers/attn/kv_einsum/w$", (-2,)),  # [L, 2, K, D, H]: contracts D
    (r"llm/layers/attn/attn_vec_einsum/w$", (-3, -2)),  # [L, N, H, D]: contracts N, H
    (r"llm/layers/mlp/gating_einsum$", (-2,)),  # [L, 2, D, F]: contracts D
    (r"llm/layers/mlp/linear$", (-2,)),  # [L, F, D]: contracts F
)
VIT_RULES: tuple[tuple[str, tuple[int, ...]], ...] = (
    (r"img/.*/(query|key|value)/kernel$", (-3,)),  # [.., D, N, H]: contracts D
    (r"img/.*/out/kernel$", (-3, -2)),  # [.., N, H, D]: contracts N, H
    (r"img/.*/MlpBlock_0/Dense_[01]/kernel$", (-2,)),  # [.., in, out]: contracts in
    (r"img/head/kernel$", (-2,)),  # [1152, D] projector
)
# One scale per vocabulary row serves both uses of the tied table: the lookup (a row) and the
# output projection x @ E^T (whose output channel is the row).
EMBEDDING_RULES: tuple[tuple[str, tuple[int, ...]], ...] = (
    (r"llm/embedder/input_embedding$", (-1,)),  # [V, D]
)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class QTensor:
    """int8 values and float32 scales (the scale has size 1 on contracted axes)."""

    values: jax.Array  # int8[shape]
    scale: jax.Array  # f32[shape with contracted axes = 1]

    @property
    def shape(self) -> tuple[int, ...]:
        return self.values.shape

    def dequantize(self, dtype=jnp.float32) -> jax.Array:
        return self.values.astype(dtype) * self.scale.astype(dtype)

    # The model reads every weight as `w.astype(compute_dtype)` inside its layer scan, so a
    # QTensor passed in its place is dequantised one layer at a time, next to its matmul.
    astype = dequantize


def quantize_array(w: np.ndarray | jax.Array, axes: tuple[int, ...]) -> QTensor:
    """Symmetric int8 quantisation of `w` with one scale per slice over `axes` (contracted).

    Works one leading-axis slice (one layer) at a time, so quantising a 3B model's bf16
    weights needs float32 scratch for one layer, not for the whole stacked tensor.
    """
    axes = tuple(sorted(a % np.ndim(w) for a in axes))
    if np.ndim(w) > 2 and 0 not in axes:
        parts = [quantize_array(w[i], tuple(a - 1 for a in axes)) for i in range(w.shape[0])]
        return QTensor(
            values=jnp.stack([p.values for p in parts]), scale=jnp.stack([p.scale for p in parts])
        )
    w = np.asarray(w, np.float32)
    peak = np.max(np.abs(w), axis=axes, keepdims=True)
    scale = np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32)
    values = np.clip(np.rint(w / scale), -127, 127).astype(np.int8)
    return QTensor(values=jnp.asarray(values), scale=jnp.asarray(scale))


def _path_str(path) -> str:
    return "/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path)


def quantize(params: PyTree, *, embedding: bool = False, vit: bool = True) -> PyTree:
    """The params with every matched big matrix replaced by a `QTensor`; the rest unchanged.

    `embedding=True` also quantises the tied [V, D] table (the biggest single matrix of the 3B
    model: 0.6 B of its 2.6 B LLM weights), at some cost in logit accuracy.
    """
    rules = LLM_RULES + (VIT_RULES if vit else ()) + (EMBEDDING_RULES if embedding else ())
    compiled = [(re.compile(pattern), axes) for pattern, axes in rules]

    def visit(path, leaf):
        name = _path_str(path)
        for pattern, axes in compiled:
            if pattern.search(name):
                return quantize_array(leaf, axes)
        return leaf

    return jax.tree_util.tree_map_with_path(visit, params)


def dequantize(params: PyTree, dtype=jnp.float32) -> PyTree:
    """Float params from (possibly) quantised ones; float leaves pass through. Jit-friendly."""
    return jax.tree.map(
        lambda x: x.dequantize(dtype) if isinstance(x, QTensor) else x,
        params,
        is_leaf=lambda x: isinstance(x, QTensor),
    )


def for_forward(params: PyTree, dtype=jnp.float32) -> PyTree:
    """Params ready for the model's forward inside jit, weights kept int8 where possible.

    The model reads matrices through `.astype(compute dtype)`, which a `QTensor` answers by
    dequantising, per layer inside the layer scan; so only the embedding table, which the
    model also indexes (`jnp.take`), is dequantised up front. Peak memory stays near the int8
    size instead of growing by a float32 copy of every weight.
    """
    embedder = params["llm"]["embedder"]
    if not any(isinstance(x, QTensor) for x in embedder.values()):
        return params
    llm = {**params["llm"], "embedder": dequantize(embedder, dtype)}
    return {**params, "llm": llm}


def quantized_paths(params: PyTree) -> list[str]:
    """The paths holding a `QTensor` (to check that the rules matched what was intended)."""
    found = []
    jax.tree_util.tree_map_with_path(
        lambda p, x: found.append(_path_str(p)) if isinstance(x, QTensor) else None,
        params,
        is_leaf=lambda x: isinstance(x, QTensor),
    )
    return found


def nbytes(params: PyTree) -> int:
    """Bytes held by all arrays of `params` (int8 values and scales counted as stored)."""
    return sum(int(np.prod(x.shape)) * x.dtype.itemsize for x in jax.tree.leaves(params))

"""Meshes and shardings: the batch over a "data" axis, weights over a "model" axis.

Arrays are placed with `NamedSharding` + `jax.device_put`; jit then propagates the layout
through the computation, so model code carries no sharding annotations. Rules are declarative:
a param-path regex and a spec for the array's *trailing* dimensions (leading ones, such as the
stacked layer axis, stay unsharded), so one rule covers stacked and unstacked kernels. A
dimension that the mesh axis does not divide evenly (e.g. 1 KV head over 2 devices) is
replicated instead.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from omrgemma.errors import UsageError

PyTree = Any
Rules = Sequence[tuple[str, tuple[str | None, ...]]]

# Megatron-style tensor parallelism: attention over heads, the MLP over its hidden width,
# the embedding over the vocabulary. Paths are big_vision's ("/"-joined dict keys).
TENSOR_PARALLEL_RULES: Rules = (
    (r"llm/layers/attn/q_einsum/w$", ("model", None, None)),  # [L, N, D, H]
    (r"llm/layers/attn/kv_einsum/w$", ("model", None, None)),  # [L, 2, K, D, H]
    (r"llm/layers/attn/attn_vec_einsum/w$", ("model", None, None)),  # [L, N, H, D]
    (r"llm/layers/mlp/gating_einsum$", (None, "model")),  # [L, 2, D, F]
    (r"llm/layers/mlp/linear$", ("model", None)),  # [L, F, D]
    (r"llm/embedder/input_embedding$", ("model", None)),  # [V, D]
    (r"img/.*/(query|key|value)/kernel$", (None, "model", None)),  # [.., D, N, H]
    (r"img/.*/(query|key|value)/bias$", ("model", None)),  # [.., N, H]
    (r"img/.*/out/kernel$", ("model", None, None)),  # [.., N, H, D]
    (r"img/.*/MlpBlock_0/Dense_0/kernel$", (None, "model")),  # [.., D, F]
    (r"img/.*/MlpBlock_0/Dense_0/bias$", ("model",)),  # [.., F]
    (r"img/.*/MlpBlock_0/Dense_1/kernel$", ("model", None)),  # [.., F, D]
)


def make_mesh(data: int, model: int = 1, devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A (data, model) mesh over the first data*model devices."""
    devices = list(jax.devices() if devices is None else devices)
    if data < 1 or model < 1 or data * model > len(devices):
        raise UsageError(
            f"a {data}x{model} mesh needs {data * model} devices, {len(devices)} present",
            hint="on CPU, XLA_FLAGS=--xla_force_host_platform_device_count=N fakes N devices",
        )
    grid = np.asarray(devices[: data * model], dtype=object).reshape(data, model)
    return Mesh(grid, ("data", "model"))


def _path_str(path) -> str:
    return "/".join(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in path)


def spec_for(
    name: str, shape: tuple[int, ...], axis_sizes: Mapping[str, int], rules: Rules
) -> PartitionSpec:
    """The PartitionSpec of the array at path `name` (first matching rule, else replicated).

    `axis_sizes` maps mesh axis names to sizes (`mesh.shape`).

    Quantised weights (`.../values`, `.../scale` of a `QTensor`) follow the rule of their
    weight; a scale's size-1 contracted axes then fall back to replication.
    """
    name = re.sub(r"/(values|scale)$", "", name)
    for pattern, trailing in rules:
        if re.search(pattern, name) and len(trailing) <= len(shape):
            full = (None,) * (len(shape) - len(trailing)) + tuple(trailing)
            fitted = tuple(
                axis if axis is None or size % axis_sizes[axis] == 0 else None
                for axis, size in zip(full, shape, strict=True)
            )
            return PartitionSpec(*fitted)
    return PartitionSpec()


def shard_params(params: PyTree, mesh: Mesh, rules: Rules = TENSOR_PARALLEL_RULES) -> PyTree:
    """Places every array of `params` on `mesh` as `rules` say (replicated when none match)."""

    def place(path, leaf):
        spec = spec_for(_path_str(path), tuple(leaf.shape), mesh.shape, rules)
        return jax.device_put(leaf, NamedSharding(mesh, spec))

    return jax.tree_util.tree_map_with_path(place, params)


def shard_batch(batch: PyTree, mesh: Mesh) -> PyTree:
    """Splits axis 0 of every array over the "data" axis (it must divide the batch)."""

    def place(leaf):
        leaf = np.asarray(leaf) if not isinstance(leaf, jax.Array) else leaf
        if leaf.shape[0] % mesh.shape["data"]:
            raise UsageError(
                f"batch of {leaf.shape[0]} does not split over {mesh.shape['data']} data shards"
            )
        spec = PartitionSpec("data", *([None] * (leaf.ndim - 1)))
        return jax.device_put(leaf, NamedSharding(mesh, spec))

    return jax.tree.map(place, batch)

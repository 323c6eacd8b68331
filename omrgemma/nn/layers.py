"""Small building blocks shared by the encoder and the decoder.

Axis legend used in every einsum of this package:
B batch, T query sequence, S key sequence, N query heads, K kv heads, G query heads per kv head
(N = K * G), H head dim, D width, F MLP hidden, V vocabulary, W vision width, M vision MLP hidden.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp

Params = dict  # nested dict of arrays, keys = big_vision names split on "/"

BIG_NEG = -2.3819763e38  # big_vision's masking constant


@dataclass(frozen=True)
class ParamSpec:
    """Shape and initial value of one parameter: normal(0, std) if `std` is set, else `fill`."""

    shape: tuple[int, ...]
    std: float | None = None
    fill: float = 0.0


def zeros(shape: tuple[int, ...]) -> ParamSpec:
    return ParamSpec(shape)


def ones(shape: tuple[int, ...]) -> ParamSpec:
    return ParamSpec(shape, fill=1.0)


def normal(shape: tuple[int, ...], std: float) -> ParamSpec:
    return ParamSpec(shape, std=std)


def fan_in(shape: tuple[int, ...], fan: int) -> ParamSpec:
    """Normal with std 1/sqrt(fan): variance-preserving for a matmul over `fan` inputs."""
    return ParamSpec(shape, std=fan**-0.5)


def layer_norm(x: jax.Array, scale: jax.Array, bias: jax.Array, eps: float) -> jax.Array:
    """Flax/torch LayerNorm over the last axis, statistics in float32."""
    xf = x.astype(jnp.float32)
    mean = xf.mean(-1, keepdims=True)
    var = jnp.square(xf - mean).mean(-1, keepdims=True)
    y = (xf - mean) * jax.lax.rsqrt(var + eps)
    return (y * scale.astype(jnp.float32) + bias.astype(jnp.float32)).astype(x.dtype)


def rms_norm(x: jax.Array, scale: jax.Array, eps: float = 1e-6) -> jax.Array:
    """Gemma RMSNorm: x * rsqrt(mean(x^2) + eps) * (1 + scale); scale is stored without the +1."""
    xf = x.astype(jnp.float32)
    y = xf * jax.lax.rsqrt(jnp.mean(jnp.square(xf), axis=-1, keepdims=True) + eps)
    return (y * (1.0 + scale.astype(jnp.float32))).astype(x.dtype)


def apply_rope(x: jax.Array, positions: jax.Array, base: float) -> jax.Array:
    """Rotary embedding in the split-half form over the full head dim.

    x: [B, T, N, H]; positions: i32[B, T]. Pair (i, i + H/2) is rotated by positions / base**(2i/H).
    """
    half = x.shape[-1] // 2
    timescale = base ** (2.0 * jnp.arange(half, dtype=jnp.float32) / x.shape[-1])
    angle = positions[..., None, None].astype(jnp.float32) / timescale  # [B, T, 1, H/2]
    sin, cos = jnp.sin(angle), jnp.cos(angle)
    first, second = jnp.split(x.astype(jnp.float32), 2, axis=-1)
    out = jnp.concatenate([first * cos - second * sin, second * cos + first * sin], axis=-1)
    return out.astype(x.dtype)


def softcap(x: jax.Array, cap: float | None) -> jax.Array:
    """cap * tanh(x / cap); identity when the cap is switched off (None)."""
    return x if cap is None else cap * jnp.tanh(x / cap)


def gelu(x: jax.Array) -> jax.Array:
    """GELU, tanh approximation (Flax default; transformers `gelu_pytorch_tanh`)."""
    return jax.nn.gelu(x, approximate=True)


def flatten_dict(tree: dict, prefix: str = "") -> dict[str, object]:
    """{"a": {"b": x}} -> {"a/b": x}: big_vision's flat checkpoint names."""
    flat: dict[str, object] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten_dict(value, name + "/"))
        else:
            flat[name] = value
    return flat


def unflatten_dict(flat: dict[str, object]) -> dict:
    """{"a/b": x} -> {"a": {"b": x}}."""
    tree: dict = {}
    for name, value in flat.items():
        *parents, leaf = name.split("/")
        node = tree
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return tree

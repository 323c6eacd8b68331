"""PaliGemma 2: the public model API over a big_vision-layout parameter dict.

    image [B, H, W, 3] in [-1, 1] -> ViT + head -> [B, Nimg, D]  (not scaled, as big_vision)
    tokens [B, T] -> embedding * sqrt(D) (cast to the table dtype) -> [B, T, D]
    [image tokens; text] -> Gemma 2 with the prefix-LM mask -> logits over the tied embedding

Parameters are a nested dict whose "/"-joined paths are big_vision's `.npz` names
(`img/embedding/kernel`, `llm/layers/attn/q_einsum/w`, ...), layers stacked on a leading axis.
Axis letters: see `layers.py`. No file I/O here: checkpoints live in `omrgemma.checkpoint`.
"""

from __future__ import annotations

import itertools
import math
from functools import partial

import jax
import jax.numpy as jnp

from omrgemma.config import PaliGemmaConfig
from omrgemma.nn import gemma, vit
from omrgemma.nn.gemma import KVCache, init_cache
from omrgemma.nn.layers import Params, ParamSpec
from omrgemma.nn.vit import resample_posemb

__all__ = [
    "Params", "KVCache", "init_cache", "init_params", "abstract_params", "param_specs",
    "encode_image", "embed_tokens", "make_attn_mask", "forward", "prefix_lm_logits",
    "resample_posemb", "count_params",
]  # fmt: skip


def param_specs(config: PaliGemmaConfig) -> dict:
    """Nested `ParamSpec`s of the whole model: {"img": ..., "llm": ...}."""
    return {"img": vit.param_specs(config), "llm": gemma.param_specs(config)}


def _is_spec(x: object) -> bool:
    return isinstance(x, ParamSpec)


@partial(jax.jit, static_argnums=0)
def init_params(config: PaliGemmaConfig, rng: jax.Array) -> Params:
    """Random parameters in `config.param_dtype` (norm scales as big_vision: LN 1, RMS 0)."""
    specs, treedef = jax.tree.flatten(param_specs(config), is_leaf=_is_spec)
    dtype = jnp.dtype(config.param_dtype)
    # One normal draw sliced into the random leaves: one random op compiles in a fraction of
    # the time of one per leaf.
    sizes = [math.prod(s.shape) if s.std is not None else 0 for s in specs]
    noise = jax.random.normal(rng, (sum(sizes),), jnp.float32)
    offsets = [0, *itertools.accumulate(sizes)]
    leaves = []
    for spec, start, size in zip(specs, offsets, sizes, strict=False):
        if spec.std is None:
            leaves.append(jnp.full(spec.shape, spec.fill, dtype))
        else:
            leaves.append(
                (noise[start : start + size].reshape(spec.shape) * spec.std).astype(dtype)
            )
    return jax.tree.unflatten(treedef, leaves)


def abstract_params(config: PaliGemmaConfig) -> Params:
    """The parameter tree with `jax.ShapeDtypeStruct` leaves; allocates nothing."""
    return jax.eval_shape(partial(init_params, config), jax.random.key(0))


def count_params(params: Params) -> int:
    return sum(int(x.size) for x in jax.tree.leaves(params))


def encode_image(params: Params, config: PaliGemmaConfig, images: jax.Array) -> jax.Array:
    """images: f32[B, H, W, 3] in [-1, 1] -> [B, Nimg, D] image tokens (ViT + projector)."""
    return vit.encode(params["img"], config, images)


def embed_tokens(params: Params, config: PaliGemmaConfig, tokens: jax.Array) -> jax.Array:
    """tokens: i32[B, T] -> [B, T, D] = E[tokens] * sqrt(D), the factor cast to E's dtype
    (so in bf16 sqrt(3584) becomes 59.75, as in big_vision and transformers)."""
    table = params["llm"]["embedder"]["input_embedding"]
    x = jnp.take(table, tokens, axis=0)
    x = x * jnp.sqrt(config.text.width).astype(table.dtype)
    return x.astype(config.compute_dtype)


def make_attn_mask(input_mask: jax.Array, mask_ar: jax.Array) -> jax.Array:
    """big_vision's prefix-LM mask. input_mask: bool[B, T] (False = padding); mask_ar: i32[B, T].

    A token attends to every valid token whose cumsum(mask_ar) is not larger than its own:
    mask_ar 0 continues the current bidirectional block, 1 starts a new (causal) one. Examples:

      [[1 1 1 1 1 1]]: pure causal attention.
      [[0 0 0 1 1 1]]: prefix-lm; the first 3 tokens attend to each other, the last 3 are causal.
      [[1 0 1 0 1 0 0 1 0 0]]: causal attention between 4 blocks; within a block, full.

    Returns bool[B, T, T], [b, query, key].
    """
    mask_ar = jnp.asarray(mask_ar)
    cumsum = jnp.cumsum(mask_ar, axis=1)
    attn = cumsum[:, None, :] <= cumsum[:, :, None]
    valid = jnp.logical_and(input_mask[:, None, :], input_mask[:, :, None])
    return jnp.logical_and(attn, valid)


def forward(
    params: Params,
    config: PaliGemmaConfig,
    x: jax.Array,
    positions: jax.Array,
    attn_mask: jax.Array,
    cache: KVCache | None = None,
    cache_index: jax.Array | None = None,
    *,
    only_last: bool = False,
) -> tuple[jax.Array, KVCache | None]:
    """The decoder on embedded inputs. Returns (f32 logits [B, T, V], updated cache or None).

    x: [B, T, D] (image tokens and/or `embed_tokens` output); positions: i32[B, T] (0-based;
    RoPE and the sliding window read them); attn_mask: bool[B, T, S].
    Without a cache S == T (teacher forcing). With a cache of S slots, this call's keys and
    values are written to slots [cache_index, cache_index + T) and every query attends over all
    S slots, restricted by attn_mask: prefill (T = prompt length) and one-token steps (T = 1).
    only_last: return only the last position's logits, [B, 1, V] (a prefill needs no more).
    """
    return gemma.decode(
        params["llm"], config, x, positions, attn_mask, cache, cache_index, only_last=only_last
    )


def prefix_lm_logits(
    params: Params,
    config: PaliGemmaConfig,
    images: jax.Array,
    tokens: jax.Array,
    mask_ar: jax.Array,
    input_mask: jax.Array | None = None,
    *,
    image_tokens: jax.Array | None = None,
) -> jax.Array:
    """Teacher-forced forward of [image tokens; text]; returns the text logits f32[B, T, V].

    images: f32[B, H, W, 3]; tokens, mask_ar: i32[B, T]; input_mask: bool[B, T] (default all
    True). Image tokens get mask_ar 0 and are always valid (big_vision `embed_image_and_text`).
    image_tokens: `encode_image(params, config, images)` when the caller already has it (a
    training-only head on the image tokens), so the encoder runs once.
    """
    zimg = encode_image(params, config, images) if image_tokens is None else image_tokens
    ztxt = embed_tokens(params, config, tokens)
    B, n_img = zimg.shape[:2]
    if input_mask is None:
        input_mask = jnp.ones(tokens.shape, bool)
    full_input = jnp.concatenate([jnp.ones((B, n_img), bool), input_mask.astype(bool)], axis=1)
    full_ar = jnp.concatenate(
        [jnp.zeros((B, n_img), jnp.int32), jnp.asarray(mask_ar, jnp.int32)], 1
    )
    x = jnp.concatenate([zimg, ztxt.astype(zimg.dtype)], axis=1)
    positions = jnp.cumsum(full_input, axis=1) - 1
    logits, _ = forward(params, config, x, positions, make_attn_mask(full_input, full_ar))
    return logits[:, n_img:]

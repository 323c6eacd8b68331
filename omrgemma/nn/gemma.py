"""Gemma 2 decoder over already-embedded inputs, with an optional KV cache.

Follows big_vision `models/ppp/gemma.py` (names `llm/...`, layers stacked on a leading axis):

    h   = x + PostAttnNorm(Attn(PreAttnNorm(x)))
    out = h + PostFFWNorm(MLP(PreFFWNorm(h)))
    Attn: RoPE on q and k, q *= query_pre_attn_scalar**-0.5, logits in f32, soft-cap, mask,
          softmax; query head n reads kv head n // G (GQA)
    MLP:  (gelu_tanh(x Wg[0]) * (x Wg[1])) Wlinear
    logits = RMSNorm_final(x) @ E^T, optionally soft-capped

Axis letters: see `layers.py`.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp

from omrgemma.config import PaliGemmaConfig
from omrgemma.nn.layers import (
    BIG_NEG,
    Params,
    apply_rope,
    fan_in,
    gelu,
    rms_norm,
    softcap,
    zeros,
)


def param_specs(config: PaliGemmaConfig) -> dict:
    """Nested `ParamSpec`s of the `llm` subtree."""
    t = config.text
    L, D, N, K, H, F = t.depth, t.width, t.num_heads, t.num_kv_heads, t.head_dim, t.mlp_dim
    return {
        "embedder": {"input_embedding": fan_in((config.vocab_size, D), D)},
        "layers": {
            "attn": {
                "q_einsum": {"w": fan_in((L, N, D, H), D)},
                "kv_einsum": {"w": fan_in((L, 2, K, D, H), D)},
                "attn_vec_einsum": {"w": fan_in((L, N, H, D), N * H)},
            },
            "mlp": {
                "gating_einsum": fan_in((L, 2, D, F), D),
                "linear": fan_in((L, F, D), F),
            },
            "pre_attention_norm": {"scale": zeros((L, D))},
            "post_attention_norm": {"scale": zeros((L, D))},
            "pre_ffw_norm": {"scale": zeros((L, D))},
            "post_ffw_norm": {"scale": zeros((L, D))},
        },
        "final_norm": {"scale": zeros((D,))},
    }


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class KVCache:
    """Keys and values, one array per layer: k[i] [B, K, S, H], v[i] [B, K, H, S] (S = slots).

    One buffer per layer (not one stacked [L, ...] array) lets a decode step hand each layer's
    cache to its attention as it is: slicing a layer out of a stacked array copies it. The
    layouts are the ones the two attention matmuls read (the contracted axis innermost: H for
    q.k, S for probs.v), so nothing is transposed either. Batch is axis 0 of every leaf (beam
    search reorders it).
    """

    k: tuple[jax.Array, ...]
    v: tuple[jax.Array, ...]

    @property
    def length(self) -> int:
        return self.k[0].shape[2]


def init_cache(config: PaliGemmaConfig, batch: int, length: int, dtype=None) -> KVCache:
    """An all-zero cache of `length` slots; dtype defaults to the compute dtype."""
    t = config.text
    K, H = t.num_kv_heads, t.head_dim
    dtype = jnp.dtype(dtype or config.compute_dtype)
    return KVCache(
        k=tuple(jnp.zeros((batch, K, length, H), dtype) for _ in range(t.depth)),
        v=tuple(jnp.zeros((batch, K, H, length), dtype) for _ in range(t.depth)),
    )


def split_layers(layers: Params) -> tuple[Params, ...]:
    """The stacked `llm/layers` tree ([L, ...] leaves) as L per-layer trees, for `decode` with a
    cache. Worth it (inside jit, before a decode loop) when the weights are already in the
    compute dtype: a step then reads them in place instead of copying each layer's slice out of
    the stack at every token. It costs a copy of the layer weights while it lives."""
    depth = jax.tree.leaves(layers)[0].shape[0]
    return tuple(layer_params(layers, i) for i in range(depth))


def layer_params(layers: Params | tuple[Params, ...], i: int) -> Params:
    """Layer i's weights from stacked (`[L, ...]` leaves) or `split_layers` weights."""
    if isinstance(layers, tuple):
        return layers[i]
    return jax.tree.map(lambda a: a[i], layers)


def _sliding_mask(
    attn_mask: jax.Array, positions: jax.Array, window: int, cache_index: jax.Array | None
) -> jax.Array:
    """The mask of sliding-window layers, [B, T, S].

    A query at position p sees key position q only if p - q < window (transformers'
    `kv_idx > q_idx - window`), except that tokens that see each other both ways (the
    bidirectional image+prefix block) stay visible at any distance, as transformers ORs its
    prefix block onto the sliding mask. With a cache, slot s is taken to hold position
    s - (last slot written) + positions[:, -1]: each row holds contiguous positions.
    """
    B, T, S = attn_mask.shape
    if cache_index is None:
        key_pos = positions
        own = attn_mask
    else:
        last_slot = cache_index + T - 1
        key_pos = jnp.arange(S)[None, :] - last_slot + positions[:, -1:]
        own = jax.lax.dynamic_slice(attn_mask, (0, 0, cache_index), (B, T, T))
    near = (positions[:, :, None] - key_pos[:, None, :]) < window
    mutual = own & jnp.swapaxes(own, 1, 2)
    if cache_index is not None:
        mutual = jax.lax.dynamic_update_slice(
            jnp.zeros_like(attn_mask), mutual, (0, 0, cache_index)
        )
    return attn_mask & (near | mutual)


def _repeat(x: jax.Array, leading: tuple[int, ...]) -> jax.Array:
    """x repeated along new leading axes, as the batch axes of a batched matmul."""
    return jnp.broadcast_to(x, leading + x.shape)


def _attention(
    x: jax.Array,
    p: Params,
    config: PaliGemmaConfig,
    positions: jax.Array,
    mask: jax.Array,
    kv: tuple[jax.Array, jax.Array] | None,
    cache_index: jax.Array | None,
) -> tuple[jax.Array, tuple[jax.Array, jax.Array] | None]:
    """x: [B, T, D]; mask: bool[B, T, S].

    kv: None (attend over this call's own keys), or this layer's cache (`KVCache.k[i]`,
    `.v[i]`): this call's keys and values are written into it at slot `cache_index` and the
    queries attend over all S slots.
    """
    t = config.text
    cd = x.dtype
    B, T, _ = x.shape
    K, G = t.num_kv_heads, t.num_heads // t.num_kv_heads
    # One matmul per head (x repeated over the head axis): each reads its [D, H] weight block
    # as it lies in memory, where one [D, N*H] matmul would first copy the weight transposed.
    q = jnp.einsum("NBTD,NDH->BTNH", _repeat(x, (t.num_heads,)), p["q_einsum"]["w"].astype(cd))
    kv_w = p["kv_einsum"]["w"].astype(cd)
    k, v = jnp.einsum("CKBTD,CKDH->CBTKH", _repeat(x, (2, K)), kv_w)
    q = apply_rope(q, positions, t.rope_base) * jnp.asarray(t.query_pre_attn_scalar**-0.5, cd)
    k = apply_rope(k, positions, t.rope_base)
    k, v = jnp.einsum("BTKH->BKTH", k), jnp.einsum("BTKH->BKHT", v)  # the cache's layouts
    if kv is not None:
        # Only the T new rows are written; inside the decode loop the cache is a loop carry, so
        # XLA updates it in place instead of copying all S slots every step.
        zero = jnp.zeros((), jnp.int32)
        kv = (
            jax.lax.dynamic_update_slice(
                kv[0], k.astype(kv[0].dtype), (zero, zero, cache_index, zero)
            ),
            jax.lax.dynamic_update_slice(
                kv[1], v.astype(kv[1].dtype), (zero, zero, zero, cache_index)
            ),
        )
        k, v = kv[0].astype(cd), kv[1].astype(cd)
    q = q.reshape(B, T, K, G, t.head_dim)  # query head n = k * G + g reads kv head k
    logits = jnp.einsum("BTKGH,BKSH->BKGTS", q, k, preferred_element_type=jnp.float32)
    logits = softcap(logits, config.attn_logits_softcap)
    logits = jnp.where(mask[:, None, None, :, :], logits, BIG_NEG)
    probs = jax.nn.softmax(logits, axis=-1).astype(cd)
    out = jnp.einsum("BKGTS,BKHS->BTKGH", probs, v).reshape(B, T, t.num_heads, t.head_dim)
    return jnp.einsum("BTNH,NHD->BTD", out, p["attn_vec_einsum"]["w"].astype(cd)), kv


def _mlp(x: jax.Array, p: Params) -> jax.Array:
    """GeGLU. x: [B, T, D]."""
    cd = x.dtype
    # Both halves of the gating weight in one batched matmul: reading w[0] and w[1] apart
    # would copy each out of the [2, D, F] array first.
    gate, up = jnp.einsum("CBTD,CDF->CBTF", _repeat(x, (2,)), p["gating_einsum"].astype(cd))
    return jnp.einsum("BTF,FD->BTD", gelu(gate) * up, p["linear"].astype(cd))


def decode(
    llm: Params,
    config: PaliGemmaConfig,
    x: jax.Array,
    positions: jax.Array,
    attn_mask: jax.Array,
    cache: KVCache | None = None,
    cache_index: jax.Array | None = None,
    *,
    only_last: bool = False,
) -> tuple[jax.Array, KVCache | None]:
    """Run the decoder. x: [B, T, D] -> (f32 logits [B, T, V], updated cache or None).

    only_last: logits of the last position only ([B, 1, V]), e.g. after a prefill, which then
    skips the vocabulary projection of every other position.

    See `omrgemma.nn.paligemma.forward` for the meaning of the arguments.
    """
    t = config.text
    cd = jnp.dtype(config.compute_dtype)
    x = x.astype(cd)
    B, T, _ = x.shape
    if cache is None:
        if attn_mask.shape != (B, T, T):
            raise ValueError(f"without a cache attn_mask must be [B, T, T], got {attn_mask.shape}")
    else:
        if cache_index is None:
            raise ValueError("a cache needs a cache_index")
        if attn_mask.shape != (B, T, cache.length):
            raise ValueError(f"attn_mask must be [B, T, S={cache.length}], got {attn_mask.shape}")
        cache_index = jnp.asarray(cache_index, jnp.int32)
    attn_mask = attn_mask.astype(bool)
    sliding_mask = attn_mask
    if config.sliding_window is not None:
        sliding_mask = _sliding_mask(attn_mask, positions, config.sliding_window, cache_index)

    def layer(x, p, mask, kv):
        y = rms_norm(x, p["pre_attention_norm"]["scale"], t.norm_eps)
        y, kv = _attention(y, p["attn"], config, positions, mask, kv, cache_index)
        x = x + rms_norm(y, p["post_attention_norm"]["scale"], t.norm_eps)
        y = _mlp(rms_norm(x, p["pre_ffw_norm"]["scale"], t.norm_eps), p["mlp"])
        x = x + rms_norm(y, p["post_ffw_norm"]["scale"], t.norm_eps)
        return x, kv

    # transformers: layer i slides iff i is even (when there is a window at all)
    is_sliding = [i % 2 == 0 for i in range(t.depth)]
    if cache is None:  # teacher forcing (training): one compiled layer, scanned
        if isinstance(llm["layers"], tuple):
            raise ValueError("split layers (`split_layers`) need a cache")
        x, _ = jax.lax.scan(
            lambda x, xs: layer(x, xs[0], jnp.where(xs[1], sliding_mask, attn_mask), None),
            x,
            (llm["layers"], jnp.asarray(is_sliding)),
        )
        new_cache = None
    else:
        # With a cache (prefill and decode steps) the layers are unrolled, so each one reads
        # its own cache buffer as it is. Weights come from `split_layers` when the caller made
        # them (a loop over tokens then slices nothing), else are sliced here (which copies).
        ks, vs = [], []
        for i, sliding in enumerate(is_sliding):
            p = layer_params(llm["layers"], i)
            mask = sliding_mask if sliding else attn_mask
            x, (k, v) = layer(x, p, mask, (cache.k[i], cache.v[i]))
            ks.append(k)
            vs.append(v)
        new_cache = KVCache(k=tuple(ks), v=tuple(vs))
    if only_last:
        x = x[:, -1:]
    x = rms_norm(x, llm["final_norm"]["scale"], t.norm_eps)
    table = llm["embedder"]["input_embedding"].astype(cd)
    logits = jnp.einsum("BTD,VD->BTV", x, table, preferred_element_type=jnp.float32)
    logits = softcap(logits, config.final_logits_softcap)
    return logits, new_cache

"""KV-cached decoding (prefill, then one token at a time) equals the uncached forward."""

from __future__ import annotations

from dataclasses import replace

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from omrgemma.config import TINY
from omrgemma.nn import paligemma as pg

PREFIX, SUFFIX = 4, 6  # text tokens with mask_ar 0 / 1
forward = jax.jit(pg.forward, static_argnums=1)
prefix_lm_logits = jax.jit(pg.prefix_lm_logits, static_argnums=1)


@pytest.fixture(scope="module")
def setup():
    params = pg.init_params(TINY, jax.random.key(0))
    # Random norm scales and projector: the defaults (0 and a zero head) would hide mistakes.
    rng = np.random.default_rng(0)
    params = jax.tree.map(lambda x: x + 0.1 * rng.standard_normal(x.shape, np.float32), params)
    images = jnp.asarray(rng.uniform(-1, 1, (2, 28, 28, 3)), jnp.float32)
    tokens = jnp.asarray(rng.integers(0, TINY.vocab_size, (2, PREFIX + SUFFIX)), jnp.int32)
    mask_ar = jnp.asarray([[0] * PREFIX + [1] * SUFFIX] * 2, jnp.int32)
    return params, images, tokens, mask_ar


def cached_logits(params, config, images, tokens, pad: int = 0, cache_dtype=None):
    """Prefill [image; prefix] (left-padded by `pad` masked slots, positions cumsum - 1 as
    big_vision's right-aligned prompts), then feed the suffix one token at a time."""
    n_img = config.num_image_tokens
    x = jnp.concatenate([pg.encode_image(params, config, images),
                         pg.embed_tokens(params, config, tokens[:, :PREFIX])], axis=1)  # fmt: skip
    B, P = x.shape[0], pad + x.shape[1]
    x = jnp.pad(x, ((0, 0), (pad, 0), (0, 0)))
    valid = jnp.arange(P) >= pad
    S = P + SUFFIX
    positions = jnp.broadcast_to(jnp.cumsum(valid) - 1, (B, P))
    prefill_mask = (
        jnp.zeros((B, P, S), bool).at[:, :, :P].set(valid[None, :, None] & valid[None, None, :])
    )
    cache = pg.init_cache(config, B, S, cache_dtype)
    logits, cache = forward(params, config, x, positions, prefill_mask, cache, 0)
    out = [logits[:, pad + n_img :]]
    for i in range(SUFFIX - 1):
        tok = tokens[:, PREFIX + i : PREFIX + i + 1]
        mask = jnp.broadcast_to((jnp.arange(S) <= P + i) & (jnp.arange(S) >= pad), (B, 1, S))
        pos = jnp.full((B, 1), n_img + PREFIX + i)
        logits, cache = forward(params, config, pg.embed_tokens(params, config, tok), pos, mask,
                                cache, P + i)  # fmt: skip
        out.append(logits)
    return jnp.concatenate(out, axis=1)  # [B, PREFIX + SUFFIX - 1, V]: all but the last text row


@pytest.mark.parametrize(("window", "pad"), [(None, 0), (3, 3)])
def test_cached_equals_uncached(setup, window, pad):
    params, images, tokens, mask_ar = setup
    config = replace(TINY, sliding_window=window)
    full = prefix_lm_logits(params, config, images, tokens, mask_ar)
    cached = cached_logits(params, config, images, tokens, pad=pad)
    np.testing.assert_allclose(np.asarray(cached), np.asarray(full[:, :-1]), atol=1e-5, rtol=0)


def test_window_changes_the_result(setup):
    """Guards the test above: a window of 3 really masks something at these lengths."""
    params, images, tokens, mask_ar = setup
    full = prefix_lm_logits(params, TINY, images, tokens, mask_ar)
    windowed = prefix_lm_logits(params, replace(TINY, sliding_window=3), images, tokens, mask_ar)
    assert float(jnp.abs(full - windowed).max()) > 1e-3


def test_bfloat16_cache_is_close(setup):
    params, images, tokens, mask_ar = setup
    full = prefix_lm_logits(params, TINY, images, tokens, mask_ar)
    cached = cached_logits(params, TINY, images, tokens, cache_dtype=jnp.bfloat16)
    assert float(jnp.abs(cached - full[:, :-1]).max()) < 0.05

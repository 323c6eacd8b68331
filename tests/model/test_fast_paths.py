"""The decode speed paths compute the same numbers as the plain ones.

`only_last` (prefill logits of the last position only), `split_layers` (per-layer weights for
the decode loop) and the per-layer cache buffers must not change a single logit.
"""

from __future__ import annotations

from dataclasses import replace

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from omrgemma.config import TINY
from omrgemma.nn import gemma
from omrgemma.nn import paligemma as pg

CONFIG = replace(TINY, sliding_window=3)  # the window makes every other layer differ


@pytest.fixture(scope="module")
def setup():
    params = pg.init_params(CONFIG, jax.random.key(0))
    rng = np.random.default_rng(0)
    params = jax.tree.map(lambda x: x + 0.1 * rng.standard_normal(x.shape, np.float32), params)
    x = jnp.asarray(rng.standard_normal((2, 7, CONFIG.text.width)), jnp.float32)
    positions = jnp.broadcast_to(jnp.arange(7), (2, 7))
    return params, x, positions


def _prefill(params, x, positions, slots: int, **kwargs):
    T = x.shape[1]
    mask = jnp.zeros((2, T, slots), bool).at[:, :, :T].set(jnp.tril(jnp.ones((T, T), bool)))
    cache = pg.init_cache(CONFIG, 2, slots)
    return pg.forward(params, CONFIG, x, positions, mask, cache, 0, **kwargs)


def test_only_last_is_the_last_row_of_all_logits(setup):
    params, x, positions = setup
    every, _ = _prefill(params, x, positions, 10)
    last, _ = _prefill(params, x, positions, 10, only_last=True)
    assert last.shape == (2, 1, CONFIG.vocab_size)
    np.testing.assert_array_equal(np.asarray(last[:, 0]), np.asarray(every[:, -1]))


def test_split_layers_give_the_same_logits_and_cache(setup):
    params, x, positions = setup
    split = {
        **params,
        "llm": {**params["llm"], "layers": gemma.split_layers(params["llm"]["layers"])},
    }
    assert len(split["llm"]["layers"]) == CONFIG.text.depth
    stacked_logits, stacked_cache = _prefill(params, x, positions, 10)
    split_logits, split_cache = _prefill(split, x, positions, 10)
    np.testing.assert_array_equal(np.asarray(split_logits), np.asarray(stacked_logits))
    for a, b in zip(jax.tree.leaves(split_cache), jax.tree.leaves(stacked_cache), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_cache_holds_this_calls_keys_in_the_written_slots_only(setup):
    """Slots [0, T) of every layer hold keys and values; the rest stay zero (in place update)."""
    params, x, positions = setup
    _, cache = _prefill(params, x, positions, 10)
    assert len(cache.k) == len(cache.v) == CONFIG.text.depth and cache.length == 10
    K, H = CONFIG.text.num_kv_heads, CONFIG.text.head_dim
    for k, v in zip(cache.k, cache.v, strict=True):
        assert k.shape == (2, K, 10, H) and v.shape == (2, K, H, 10)
        assert np.all(np.abs(np.asarray(k[:, :, :7])).sum(-1) > 0)
        assert not np.any(np.asarray(k[:, :, 7:])) and not np.any(np.asarray(v[..., 7:]))


def test_split_layers_are_refused_without_a_cache(setup):
    params, x, positions = setup
    split = {
        **params,
        "llm": {**params["llm"], "layers": gemma.split_layers(params["llm"]["layers"])},
    }
    mask = jnp.ones((2, 7, 7), bool)
    with pytest.raises(ValueError, match="need a cache"):
        pg.forward(split, CONFIG, x, positions, mask)

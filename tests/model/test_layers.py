"""Known-value tests of the building blocks: mask, RoPE, RMSNorm, GQA grouping, embeddings,
position-embedding resampling."""

from __future__ import annotations

from dataclasses import replace

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest

from omrgemma.config import TINY
from omrgemma.nn import gemma
from omrgemma.nn import paligemma as pg
from omrgemma.nn.layers import apply_rope, rms_norm, softcap


def test_make_attn_mask_big_vision_examples():
    causal = pg.make_attn_mask(jnp.ones((1, 4), bool), jnp.array([[1, 1, 1, 1]]))
    np.testing.assert_array_equal(causal[0], np.tril(np.ones((4, 4), bool)))

    prefix = pg.make_attn_mask(jnp.ones((1, 6), bool), jnp.array([[0, 0, 0, 1, 1, 1]]))
    expected = np.array([
        [1, 1, 1, 0, 0, 0],
        [1, 1, 1, 0, 0, 0],
        [1, 1, 1, 0, 0, 0],
        [1, 1, 1, 1, 0, 0],
        [1, 1, 1, 1, 1, 0],
        [1, 1, 1, 1, 1, 1],
    ], bool)  # fmt: skip
    np.testing.assert_array_equal(prefix[0], expected)

    blocks = pg.make_attn_mask(jnp.ones((1, 5), bool), jnp.array([[1, 0, 1, 0, 0]]))
    np.testing.assert_array_equal(blocks[0], np.array([
        [1, 1, 0, 0, 0],
        [1, 1, 0, 0, 0],
        [1, 1, 1, 1, 1],
        [1, 1, 1, 1, 1],
        [1, 1, 1, 1, 1],
    ], bool))  # fmt: skip

    padded = pg.make_attn_mask(jnp.array([[True, True, False]]), jnp.array([[0, 1, 1]]))
    np.testing.assert_array_equal(padded[0], np.array([[1, 0, 0], [1, 1, 0], [0, 0, 0]], bool))


def test_rope_rotates_split_half_pairs():
    # H = 4: pairs (0, 2) rotate by p / 10000**0 and (1, 3) by p / 10000**0.5 = p / 100.
    x = jnp.eye(4)[None, :, None, :]  # [B=1, T=4, N=1, H=4], unit vectors
    pos = jnp.array([[1, 100, 1, 100]])
    out = np.asarray(apply_rope(x, pos, 10_000.0))[0, :, 0]
    c, s = np.cos(1.0), np.sin(1.0)
    np.testing.assert_allclose(out[0], [c, 0, s, 0], atol=1e-6)  # e0 at p=1
    np.testing.assert_allclose(out[1], [0, c, 0, s], atol=1e-6)  # e1 at p=100
    np.testing.assert_allclose(out[2], [-s, 0, c, 0], atol=1e-6)  # e2 at p=1


def test_rope_scores_depend_only_on_relative_position():
    rng = np.random.default_rng(0)
    q, k = (jnp.asarray(rng.normal(size=(1, 1, 1, 8)), jnp.float32) for _ in range(2))

    def score(m, n):
        return float(
            jnp.sum(apply_rope(q, jnp.array([[m]]), 1e4) * apply_rope(k, jnp.array([[n]]), 1e4))
        )

    assert score(7, 3) == pytest.approx(score(104, 100), abs=1e-5)
    assert score(7, 3) != pytest.approx(score(7, 4), abs=1e-3)


def test_rms_norm_uses_one_plus_scale():
    x = jnp.array([[3.0, 4.0]])
    out = rms_norm(x, jnp.array([0.0, 1.0]), eps=0.0)
    rms = np.sqrt(12.5)
    np.testing.assert_allclose(np.asarray(out)[0], [3 / rms, 2 * 4 / rms], rtol=1e-6)


def test_softcap():
    np.testing.assert_allclose(
        softcap(jnp.array([0.0, 1e6, -60.0]), 30.0), [0, 30, 30 * np.tanh(-2)], rtol=1e-6
    )
    assert softcap(jnp.array(123.0), None) == 123.0


def test_gqa_query_head_n_reads_kv_head_n_div_groups():
    """N=4 query heads, K=2 kv heads: heads 0,1 read kv head 0 and heads 2,3 read kv head 1."""
    t = TINY.text
    D, N, K, H = t.width, t.num_heads, t.num_kv_heads, t.head_dim
    assert D == N * H and N == 2 * K
    v_w = jnp.stack([jnp.full((D, H), (k + 1) / D) for k in range(K)])  # v of head k == k + 1
    p = {
        "q_einsum": {"w": jnp.zeros((N, D, H))},
        "kv_einsum": {"w": jnp.stack([jnp.zeros((K, D, H)), v_w])},
        "attn_vec_einsum": {"w": jnp.eye(D).reshape(N, H, D)},  # concatenates the heads
    }
    x = jnp.ones((1, 3, D))
    mask = jnp.ones((1, 3, 3), bool)
    out, _ = gemma._attention(x, p, TINY, jnp.arange(3)[None], mask, None, None)
    np.testing.assert_allclose(np.asarray(out)[0, 0], np.repeat([1.0, 1.0, 2.0, 2.0], H), rtol=1e-6)


def test_embedding_factor_is_cast_to_the_table_dtype():
    # sqrt(3584) = 59.866 rounds to 59.75 in bfloat16 (doc §1.3).
    config = replace(TINY, text=replace(TINY.text, width=3584))
    table = jnp.ones((2, 3584), jnp.bfloat16)
    x = pg.embed_tokens({"llm": {"embedder": {"input_embedding": table}}}, config, jnp.array([[1]]))
    assert x.dtype == jnp.float32 and float(x[0, 0, 0]) == 59.75
    x32 = pg.embed_tokens({"llm": {"embedder": {"input_embedding": table.astype(jnp.float32)}}},
                          config, jnp.array([[1]]))  # fmt: skip
    assert float(x32[0, 0, 0]) == pytest.approx(np.sqrt(3584), rel=1e-6)


def test_resample_posemb_is_bilinear_with_aligned_corners():
    grid = np.array([[0.0, 2.0], [4.0, 6.0]], np.float32).reshape(1, 4, 1)
    out = pg.resample_posemb(grid, 9).reshape(3, 3)
    np.testing.assert_allclose(out, [[0, 1, 2], [2, 3, 4], [4, 5, 6]], atol=1e-6)
    assert pg.resample_posemb(grid, 4) is grid
    bf16 = pg.resample_posemb(grid.astype(ml_dtypes.bfloat16), 9)
    assert bf16.dtype == ml_dtypes.bfloat16 and bf16.shape == (1, 9, 1)
    with pytest.raises(ValueError, match="square"):
        pg.resample_posemb(grid, 8)


def test_image_tokens_are_not_scaled():
    """The projector output goes into the sequence as is (big_vision), no sqrt(D) factor."""
    params = pg.init_params(TINY, jax.random.key(0))
    head = {"kernel": jnp.zeros((32, 32)), "bias": jnp.arange(32.0)}
    params = {**params, "img": {**params["img"], "head": head}}
    z = pg.encode_image(params, TINY, jnp.zeros((1, 28, 28, 3)))
    assert z.shape == (1, TINY.num_image_tokens, TINY.text.width)
    np.testing.assert_allclose(np.asarray(z)[0, 2], np.arange(32.0))

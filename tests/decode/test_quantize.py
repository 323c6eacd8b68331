"""int8 weight-only quantisation: error bounds, which weights it touches, decoding with it."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from omrgemma.decode import generate
from omrgemma.nn import paligemma as pg
from omrgemma.quantize import QTensor, dequantize, nbytes, quantize, quantize_array, quantized_paths

from .tinymodel import NEVER, PROMPTS

LLM = "llm/layers/"
VIT = "img/Transformer/encoderblock/"
EXPECTED = {
    LLM + "attn/q_einsum/w", LLM + "attn/kv_einsum/w", LLM + "attn/attn_vec_einsum/w",
    LLM + "mlp/gating_einsum", LLM + "mlp/linear",
    *(VIT + f"MultiHeadDotProductAttention_0/{n}/kernel" for n in ("query", "key", "value", "out")),
    VIT + "MlpBlock_0/Dense_0/kernel", VIT + "MlpBlock_0/Dense_1/kernel",
    "img/head/kernel",
}  # fmt: skip


def test_per_channel_scales_bound_the_error():
    w = np.random.default_rng(0).normal(size=(2, 4, 16, 8)).astype(np.float32)  # [L, N, D, H]
    w[0, 1, :, 3] *= 100  # one loud channel must not coarsen the others
    q = quantize_array(w, axes=(-2,))
    assert q.values.dtype == jnp.int8 and q.scale.shape == (2, 4, 1, 8)
    np.testing.assert_allclose(q.scale[..., 0, :], np.abs(w).max(axis=-2) / 127, rtol=1e-6)
    error = np.abs(np.asarray(q.dequantize()) - w)
    assert np.all(error <= np.asarray(q.scale) / 2 + 1e-6)
    assert error[1].max() < 0.02  # a quiet layer keeps its own, fine scale


def test_quantises_the_big_matrices_only(tiny):
    q = quantize(tiny.params)
    assert set(quantized_paths(q)) == EXPECTED
    assert set(quantized_paths(quantize(tiny.params, embedding=True))) == EXPECTED | {
        "llm/embedder/input_embedding"
    }
    assert q["llm"]["final_norm"]["scale"] is tiny.params["llm"]["final_norm"]["scale"]
    matched = sum(  # the matched matrices shrink from 4 bytes a weight to 1 (+ scales)
        x.nbytes
        for path, x in jax.tree_util.tree_leaves_with_path(tiny.params)
        if "/".join(k.key for k in path) in EXPECTED
    )
    assert nbytes(tiny.params) - nbytes(q) > 0.6 * matched


def test_int8_logits_stay_close_and_decoding_runs_on_int8(tiny):
    q = quantize(tiny.params)
    tokens = jnp.asarray([PROMPTS[0]])
    mask_ar = jnp.zeros_like(tokens)
    exact = pg.prefix_lm_logits(tiny.params, tiny.config, tiny.images[:1], tokens, mask_ar)
    approx = pg.prefix_lm_logits(dequantize(q), tiny.config, tiny.images[:1], tokens, mask_ar)
    error = np.abs(np.asarray(approx - exact))
    spread = float(np.asarray(exact).std())  # about 1 for these random weights
    assert error.mean() < 0.02 * spread and error.max() < 0.1 * spread
    # The engine dequantises inside its compiled loop (layer by layer, through QTensor.astype):
    # the same tokens as float weights that were dequantised beforehand.
    q = quantize(tiny.params, embedding=True)  # the table too: dequantised up front
    on_int8 = generate(q, tiny.config, tiny.images, PROMPTS, max_new_tokens=4, eos_id=NEVER)
    on_float = generate(
        dequantize(q), tiny.config, tiny.images, PROMPTS, max_new_tokens=4, eos_id=NEVER
    )
    for a, b in zip(on_int8, on_float, strict=True):
        assert a.tokens == b.tokens
        np.testing.assert_allclose(a.logprobs, b.logprobs, atol=1e-5)
    assert isinstance(q["llm"]["layers"]["mlp"]["linear"], QTensor)

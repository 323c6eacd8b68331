"""A one-layer prefix-LM in pure JAX with PaliGemma's interface, for testing the training loop.

It has the same parameter layout idea as the real model (`img/...`, `llm/...`) and the same mask
rules (image and prefix bidirectional, suffix causal), so freezing, masking and sharding are
exercised; it is small enough that a step takes milliseconds.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from omrgemma.train import ModelFns

HEIGHT, WIDTH, PATCH = 8, 16, 4


def init(rng: jax.Array, *, vocab: int = 40, width: int = 32) -> dict:
    keys = jax.random.split(rng, 6)
    n_patches = (HEIGHT // PATCH) * (WIDTH // PATCH)
    dense = lambda k, i, o: jax.random.normal(k, (i, o)) / jnp.sqrt(i)  # noqa: E731
    return {
        "img": {
            "patch": dense(keys[0], PATCH * PATCH * 3, width),
            "pos": 0.02 * jax.random.normal(keys[1], (n_patches, width)),
        },
        "llm": {
            "embed": jax.random.normal(keys[2], (vocab, width)),
            "qkv": dense(keys[3], width, 3 * width),
            "mlp_in": dense(keys[4], width, 4 * width),
            "mlp_out": dense(keys[5], 4 * width, width),
            "pos": jnp.zeros((64, width)),
        },
    }


def logits(params, images, tokens, mask_ar, input_mask):
    """f32[B, T, V] over the text positions."""
    b = images.shape[0]
    patches = images.reshape(b, HEIGHT // PATCH, PATCH, WIDTH // PATCH, PATCH, 3)
    patches = patches.transpose(0, 1, 3, 2, 4, 5).reshape(b, -1, PATCH * PATCH * 3)
    x_img = patches @ params["img"]["patch"] + params["img"]["pos"]
    t = tokens.shape[1]
    x_txt = params["llm"]["embed"][tokens] + params["llm"]["pos"][:t]
    x = jnp.concatenate([x_img, x_txt], axis=1)
    n_img = x_img.shape[1]
    ar = jnp.concatenate([jnp.zeros((b, n_img), jnp.int32), mask_ar], axis=1)
    valid = jnp.concatenate([jnp.ones((b, n_img), jnp.int32), input_mask], axis=1).astype(bool)
    cum = jnp.cumsum(ar, axis=1)
    mask = (cum[:, None, :] <= cum[:, :, None]) & valid[:, None, :] & valid[:, :, None]
    q, k, v = jnp.split(x @ params["llm"]["qkv"], 3, axis=-1)
    att = jnp.einsum("bqd,bkd->bqk", q, k) / jnp.sqrt(q.shape[-1])
    att = jax.nn.softmax(jnp.where(mask, att, -1e9), axis=-1)
    x = x + jnp.einsum("bqk,bkd->bqd", att, v)
    x = x + jax.nn.gelu(x @ params["llm"]["mlp_in"]) @ params["llm"]["mlp_out"]
    return x[:, n_img:] @ params["llm"]["embed"].T


STANDIN = ModelFns(init=init, logits=logits)

"""The TINY model with random weights, images and prompts, and the uncached reference."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from omrgemma.config import TINY, PaliGemmaConfig
from omrgemma.nn import paligemma as pg

# Prompt lengths 2, 5 and 7 share the 8-slot bucket; 11 needs the 16-slot one.
PROMPTS = ([2, 17, 40, 9, 33], [2, 60], [2, 90, 91, 92, 93, 94, 95, 96, 97, 98, 3])
NEVER = 10_000  # an EOS id outside the vocabulary: rows run to max_new_tokens


@dataclass(frozen=True)
class Tiny:
    config: PaliGemmaConfig
    params: dict
    images: np.ndarray  # f32[3, 28, 28, 3]


def make_tiny() -> Tiny:
    params = pg.init_params(TINY, jax.random.key(0))
    # The projector is zero-initialised (as in PaliGemma 1), which would make every image look
    # the same to the decoder; random weights there let the tests see image handling.
    head = params["img"]["head"]["kernel"]
    params["img"]["head"]["kernel"] = jax.random.normal(jax.random.key(1), head.shape) * 0.5
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (len(PROMPTS), TINY.image_size, TINY.image_size, 3))
    return Tiny(TINY, params, images.astype(np.float32))


TEXT_SLOTS = 32  # prompt + output, padded: one compiled reference for every length


@functools.partial(jax.jit, static_argnums=1)
def _text_logprobs(params, config, image, tokens, mask_ar, input_mask):
    logits = pg.prefix_lm_logits(params, config, image, tokens, mask_ar, input_mask)
    return jax.nn.log_softmax(logits.astype(jnp.float32))


def teacher_forced_logprobs(tiny: Tiny, row: int, prompt, generated) -> np.ndarray:
    """Uncached reference: f32[len(generated) + 1, V] log-softmax of the logits predicting each
    generated token (and the one after), from one `prefix_lm_logits` call over prompt + output.

    The text is padded at the end to TEXT_SLOTS with causal, invalid tokens, which nothing
    before them can see.
    """
    n = len(prompt) + len(generated)
    tokens = np.zeros((1, TEXT_SLOTS), np.int32)
    tokens[0, :n] = list(prompt) + list(generated)
    mask_ar = np.ones((1, TEXT_SLOTS), np.int32)
    mask_ar[0, : len(prompt)] = 0
    input_mask = np.arange(TEXT_SLOTS)[None] < n
    logprobs = _text_logprobs(
        tiny.params, tiny.config, tiny.images[row : row + 1], tokens, mask_ar, input_mask
    )
    return np.asarray(logprobs[0, len(prompt) - 1 : n])

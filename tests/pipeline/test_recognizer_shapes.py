"""The recognizer at a non-square model input: (H, W) fitting and a wide TINY model directory."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from omrgemma.errors import UsageError
from omrgemma.recognizer import resolve_model_dir, to_model_input

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "images"


def test_to_model_input_fits_height_by_width():
    black = np.zeros((32, 128), np.uint8)  # 1:4, into 64 x 512 (1:8): scaled x2, centred
    x = to_model_input(black, (64, 512))
    assert x.shape == (64, 512, 3) and x.dtype == np.float32
    np.testing.assert_array_equal(x[:, 128:384], -1.0)  # the image, 256 px wide
    np.testing.assert_array_equal(x[:, :128], 1.0)  # white padding left and right
    np.testing.assert_array_equal(x[:, 384:], 1.0)
    # A crop already at the input shape is only rescaled to [-1, 1].
    crop = np.random.default_rng(0).integers(0, 256, (64, 512), dtype=np.uint8)
    np.testing.assert_array_equal(
        to_model_input(crop, (64, 512))[..., 1], crop.astype(np.float32) / 127.5 - 1.0
    )
    assert to_model_input(crop, 28).shape == (28, 28, 3)  # a square side as before


@pytest.fixture(scope="module")
def wide_model(tmp_path_factory) -> Path:
    """A TINY random model reading 14 x 56 images (a 1 x 4 grid) with a kern tokenizer."""
    import jax

    from omrgemma.checkpoint import save_model_dir
    from omrgemma.config import TINY
    from omrgemma.kerntok import KernTokenizerSpec, train_kern_tokenizer
    from omrgemma.nn.paligemma import init_params

    config = replace(TINY, name="tiny-wide", image_size=(14, 56))
    texts = [p.read_text(encoding="utf-8") for p in sorted(SAMPLES.glob("*.krn"))]
    lines = [line for text in texts for line in text.splitlines()]
    chunks = ["\n".join(lines[i : i + 6]) for i in range(0, len(lines), 3)]
    tokenizer = train_kern_tokenizer(chunks, KernTokenizerSpec(vocab_size=config.vocab_size))
    params = init_params(config, jax.random.key(0))
    # A random projector, so the image reaches the decoder (init zeroes img/head).
    head = params["img"]["head"]
    head["kernel"] = jax.random.normal(jax.random.key(1), head["kernel"].shape)
    directory = tmp_path_factory.mktemp("models") / "tiny-wide"
    save_model_dir(directory, params, config, tokenizer=tokenizer)
    (directory / "inference.json").write_text(json.dumps({"max_new_tokens": 6}))
    return directory


def test_the_recognizer_reads_a_wide_model(wide_model):
    import jax
    import jax.numpy as jnp

    from omrgemma.nn.paligemma import prefix_lm_logits
    from omrgemma.recognizer import load_recognizer

    recognizer = load_recognizer(wide_model, device="cpu", batch_size=2)
    assert recognizer.image_size == (14, 56) and recognizer.settings["image_size"] == (14, 56)
    rng = np.random.default_rng(3)
    systems = [rng.integers(0, 256, (40, 300), dtype=np.uint8) for _ in range(3)]
    results = recognizer.recognize(systems)
    assert len(results) == 3
    for image, result in zip(systems, results, strict=True):
        assert result.kern == "".join(result.pieces) and 1 <= len(result.tokens) <= 6
        # Greedy decoding: each token is the argmax of the uncached model on the fitted image.
        prompt = list(recognizer.prompt_ids)
        tokens = np.array([prompt + list(result.tokens)], np.int32)
        mask_ar = np.array([[0] * len(prompt) + [1] * len(result.tokens)], np.int32)
        pixels = to_model_input(image, (14, 56))[None]
        logits = prefix_lm_logits(recognizer.params, recognizer.config, pixels, tokens, mask_ar)
        logprobs = np.asarray(jax.nn.log_softmax(logits.astype(jnp.float32)))[0]
        steps = logprobs[len(prompt) - 1 : -1]
        assert steps.argmax(-1).tolist() == list(result.tokens)
        chosen = steps[np.arange(len(result.tokens)), list(result.tokens)]
        np.testing.assert_allclose(result.token_logprobs, chosen, atol=2e-3)


def test_resolution_lookup_names_a_wide_model(wide_model):
    assert resolve_model_dir(wide_model, None) == wide_model
    with pytest.raises(UsageError) as error:
        resolve_model_dir(wide_model, 448)
    assert "14x56" in str(error.value.hint)

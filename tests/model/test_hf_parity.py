"""Logits parity with the reference implementation: transformers' PaliGemmaForConditionalGeneration.

A tiny random PaliGemma 2 (Gemma 2 text, SigLIP vision, 28 px images = 4 image tokens) is built
in torch on the CPU, saved with `save_pretrained` (sharded, so the index JSON path is used; the
installed transformers writes the legacy hub names) plus a copy renamed to the >= 4.52 names,
loaded through our transformers name map, and compared in float32.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from omrgemma.checkpoint import hf_canonical_name, load_any, load_hf
from omrgemma.config import TINY, PaliGemmaConfig, to_hf_config
from omrgemma.nn import paligemma as pg

torch = pytest.importorskip("torch", reason="the parity tests need torch (CPU)")
transformers = pytest.importorskip("transformers", reason="the parity tests need transformers")

TOL = 1e-4
prefix_lm_logits = jax.jit(pg.prefix_lm_logits, static_argnums=1)
forward = jax.jit(pg.forward, static_argnums=1)
VOCAB = 300  # ours; transformers appends <image> = 300 and pads to 320 rows
BASE = replace(TINY, vocab_size=VOCAB, text=replace(TINY.text, depth=3))


def build_reference(config: PaliGemmaConfig, seed: int = 0):
    """A random transformers PaliGemma with the same architecture, every weight perturbed so
    that norm scales and biases are non-zero too (they are initialised to 0/1)."""
    hf_dict = to_hf_config(config)
    hf_dict["dtype"] = "float32"
    hf_config = transformers.PaliGemmaConfig(
        **{k: v for k, v in hf_dict.items() if k not in ("model_type", "architectures")}
    )
    torch.manual_seed(seed)
    model = transformers.PaliGemmaForConditionalGeneration(hf_config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return model


def save_reference(model, directory: Path) -> Path:
    model.save_pretrained(directory, max_shard_size="20KB")
    return directory


def rename_to_new_names(src: Path, dst: Path) -> Path:
    """A copy of a transformers directory with every tensor under its >= 4.52 name."""
    dst.mkdir()
    shutil.copy(src / "config.json", dst / "config.json")
    index = json.loads((src / "model.safetensors.index.json").read_text())
    weight_map = {}
    for shard in sorted(set(index["weight_map"].values())):
        tensors = {hf_canonical_name(k): v for k, v in load_file(src / shard).items()}
        save_file(tensors, dst / shard)
        weight_map.update(dict.fromkeys(tensors, shard))
    index["weight_map"] = weight_map
    (dst / "model.safetensors.index.json").write_text(json.dumps(index))
    return dst


def make_batch(config: PaliGemmaConfig, prefix_len: int, suffix_len: int, seed: int = 1):
    """Two examples: images in [-1, 1], tokens [bos, prefix..., sep, suffix...], mask_ar."""
    rng = np.random.default_rng(seed)
    images = rng.uniform(-1, 1, (2, config.image_size, config.image_size, 3)).astype(np.float32)
    body = rng.integers(3, VOCAB, (2, prefix_len + suffix_len))
    tokens = np.concatenate([np.full((2, 1), 2), body[:, :prefix_len], np.full((2, 1), 108),
                             body[:, prefix_len:]], axis=1)  # fmt: skip
    mask_ar = np.concatenate([np.zeros((2, prefix_len + 2), int), np.ones((2, suffix_len), int)], 1)
    return images, tokens.astype(np.int32), mask_ar.astype(np.int32)


def reference_logits(model, config, images, tokens, mask_ar) -> np.ndarray:
    """Text-position logits from transformers (prefix via token_type_ids, as its docs say)."""
    n_img = config.num_image_tokens
    image_ids = np.full((tokens.shape[0], n_img), VOCAB)
    ids = torch.tensor(np.concatenate([image_ids, tokens], axis=1))
    token_type = torch.tensor(np.concatenate([np.zeros_like(image_ids), mask_ar], axis=1))
    pixels = torch.tensor(images).permute(0, 3, 1, 2)
    with torch.no_grad():
        out = model(input_ids=ids, pixel_values=pixels, token_type_ids=token_type, use_cache=False)
    return out.logits[:, n_img:, :VOCAB].numpy()


CASES = {
    # name: (our config, keep the window when loading, prefix length, suffix length)
    "pretraining-caps": (BASE, False, 3, 5),
    "tight-soft-caps": (
        replace(BASE, attn_logits_softcap=1.5, final_logits_softcap=2.0),
        False,
        3,
        5,
    ),
    "no-soft-caps": (
        replace(BASE, attn_logits_softcap=None, final_logits_softcap=None),
        False,
        3,
        5,
    ),
    # window 4 < the 9-token image+prefix block (kept bidirectional, as in transformers) and <
    # the 12-token suffix (sliding layers 0 and 2 see only the last 4 positions).
    "sliding-window": (replace(BASE, sliding_window=4, attn_logits_softcap=3.0), True, 3, 12),
}


# Two cases cover every switch with non-default values; the other two run with -m slow.
SLOW_CASES = {"pretraining-caps", "no-soft-caps"}


@pytest.fixture(
    scope="module",
    params=[pytest.param(n, marks=(pytest.mark.slow,) if n in SLOW_CASES else ()) for n in CASES],
)
def case(request, tmp_path_factory):
    config, keep_window, prefix_len, suffix_len = CASES[request.param]
    model = build_reference(config)
    legacy = save_reference(model, tmp_path_factory.mktemp(request.param) / "legacy")
    return (
        request.param,
        config,
        keep_window,
        model,
        legacy,
        make_batch(config, prefix_len, suffix_len),
    )


def test_loaded_config_matches(case):
    name, config, keep_window, _, legacy, _ = case
    loaded = load_hf(legacy, keep_sliding_window=keep_window)
    assert replace(loaded.config, name=config.name) == config


def test_prefix_lm_logits_match_transformers(case, tmp_path):
    name, config, keep_window, model, legacy, (images, tokens, mask_ar) = case
    expected = reference_logits(model, config, images, tokens, mask_ar)
    renamed = rename_to_new_names(legacy, tmp_path / "renamed")
    for directory in (legacy, renamed):
        loaded = load_any(directory, keep_sliding_window=keep_window)
        ours = prefix_lm_logits(loaded.params, loaded.config, jnp.asarray(images),
                                   jnp.asarray(tokens), jnp.asarray(mask_ar))  # fmt: skip
        diff = float(np.abs(np.asarray(ours) - expected).max())
        print(f"{name} {directory.name}: max |ours - transformers| = {diff:.2e}")
        assert diff <= TOL
    # The comparison can fail: with the window (or the caps) switched the other way, it does.
    if name in ("sliding-window", "tight-soft-caps"):
        other = (replace(loaded.config, sliding_window=None) if name == "sliding-window"
                 else replace(loaded.config, attn_logits_softcap=50.0))  # fmt: skip
        wrong = prefix_lm_logits(loaded.params, other, images, tokens, mask_ar)
        assert float(np.abs(np.asarray(wrong) - expected).max()) > 100 * TOL


def test_greedy_decode_with_cache_matches_transformers(case):
    """Every step of transformers' greedy generation, replayed through our KV-cached forward."""
    name, config, keep_window, model, legacy, (images, tokens, mask_ar) = case
    steps = 6
    prompt = tokens[:, : int((mask_ar[0] == 0).sum())]  # bos, prefix, sep
    n_img = config.num_image_tokens
    ids = torch.tensor(np.concatenate([np.full((2, n_img), VOCAB), prompt], axis=1))
    with torch.no_grad():
        out = model.generate(
            input_ids=ids, pixel_values=torch.tensor(images).permute(0, 3, 1, 2),
            token_type_ids=torch.zeros_like(ids), attention_mask=torch.ones_like(ids),
            max_new_tokens=steps, min_new_tokens=steps, do_sample=False,
            suppress_tokens=list(range(VOCAB, model.config.text_config.vocab_size)),
            output_logits=True, return_dict_in_generate=True,
        )  # fmt: skip
    hf_tokens = out.sequences[:, ids.shape[1] :].numpy()
    hf_logits = np.stack([s[:, :VOCAB].numpy() for s in out.logits], axis=1)  # [B, steps, V]

    loaded = load_hf(legacy, keep_sliding_window=keep_window)
    params, cfg = loaded.params, loaded.config
    P = ids.shape[1]
    S = P + steps
    x = jnp.concatenate(
        [pg.encode_image(params, cfg, images), pg.embed_tokens(params, cfg, prompt)], 1
    )
    prefill_mask = jnp.zeros((2, P, S), bool).at[:, :, :P].set(True)  # all prefix: bidirectional
    positions = jnp.broadcast_to(jnp.arange(P), (2, P))
    logits, cache = forward(params, cfg, x, positions, prefill_mask, pg.init_cache(cfg, 2, S), 0)
    ours_logits, ours_tokens = [logits[:, -1]], [jnp.argmax(logits[:, -1], -1)]
    for i in range(steps - 1):
        tok = jnp.asarray(hf_tokens[:, i : i + 1])  # teacher forcing on transformers' tokens
        mask = jnp.broadcast_to(jnp.arange(S) <= P + i, (2, 1, S))
        pos = jnp.full((2, 1), P + i)
        logits, cache = forward(
            params, cfg, pg.embed_tokens(params, cfg, tok), pos, mask, cache, P + i
        )
        ours_logits.append(logits[:, 0])
        ours_tokens.append(jnp.argmax(logits[:, 0], -1))
    diff = float(np.abs(np.stack(ours_logits, 1) - hf_logits).max())
    print(f"{name}: greedy decode max |ours - transformers| = {diff:.2e}")
    assert diff <= TOL
    np.testing.assert_array_equal(np.stack(ours_tokens, 1), hf_tokens)

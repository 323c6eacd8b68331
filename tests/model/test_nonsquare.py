"""Non-square inputs: (H, W) images, ph x pw patches, (gh, gw) position grids.

The official presets are square; our CPU models read one staff as a wide, short image (e.g.
64 x 512 px, 16 px patches -> a 4 x 32 grid). These tests pin the config spelling, the patch
order of the encoder against a numpy patchify, the position-table resampling against
hand-computed bilinear values, and the save/load round trips.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import jax
import ml_dtypes
import numpy as np
import pytest

from omrgemma.checkpoint import (
    load_any,
    load_big_vision_npz,
    save_model_dir,
    write_big_vision_npz,
)
from omrgemma.config import OFFICIAL, TINY, PaliGemmaConfig, to_hf_config
from omrgemma.errors import CheckpointError
from omrgemma.nn import paligemma as pg
from omrgemma.nn import vit
from omrgemma.nn.layers import flatten_dict, unflatten_dict

REPO = Path(__file__).resolve().parents[2]
WIDE = replace(TINY, name="tiny-wide", image_size=(14, 56))  # 1 x 4 grid of 14 px patches
# Taller-than-wide patches on a 2 x 4 grid: 8 px vertical steps, 12 px horizontal ones.
RECT = replace(TINY, name="tiny-rect", image_size=(16, 48), patch_size=(8, 12))


def test_sizes_are_spelled_one_way():
    assert WIDE.image_size == (14, 56) and WIDE.grid_shape == (1, 4)
    assert WIDE.num_image_tokens == 4 and WIDE.image_hw == (14, 56)
    assert RECT.patch_hw == (8, 12) and RECT.grid_shape == (2, 4) and RECT.num_image_tokens == 8
    # A square pair is the plain int, so square configs compare and serialise as before.
    assert replace(TINY, image_size=(28, 28), patch_size=[14, 14]) == TINY
    assert TINY.image_size == 28 and TINY.grid_shape == (2, 2) and TINY.grid_size == 2
    with pytest.raises(ValueError, match="not square"):
        _ = WIDE.grid_size
    with pytest.raises(ValueError, match="multiple of patch"):
        replace(TINY, image_size=(14, 50))
    with pytest.raises(ValueError, match="ints"):
        replace(TINY, image_size=(14.0, 56))
    with pytest.raises(ValueError, match="height, width"):
        replace(TINY, image_size=(14, 56, 3))


def test_json_round_trip_and_official_json_unchanged():
    for config in (WIDE, RECT):
        data = json.loads(config.to_json())
        assert data["image_size"] == list(config.image_hw)
        back = PaliGemmaConfig.from_json(config.to_json())
        assert back == config and isinstance(back.image_size, tuple)
        hash(back)  # a jit static argument: lists would not hash
    for config in (*OFFICIAL, TINY):
        data = json.loads(config.to_json())
        assert isinstance(data["image_size"], int) and isinstance(data["patch_size"], int)
        assert PaliGemmaConfig.from_json(config.to_json()) == config
    with pytest.raises(ValueError, match="square"):
        to_hf_config(WIDE)


def test_shipped_config_json_loads_unchanged():
    """The shipped config.json reads back byte for byte, and its grid matches its input."""
    path = REPO / "models" / "omrgemma-small" / "config.json"
    if not path.is_file():
        pytest.skip("no shipped model in this checkout")
    text = path.read_text()
    config = PaliGemmaConfig.from_json(text)
    (h, w), (ph, pw) = config.image_hw, config.patch_hw
    assert config.grid_shape == (h // ph, w // pw)
    assert config.num_image_tokens == (h // ph) * (w // pw)
    assert config.to_json() == text


def test_a_square_config_json_written_before_non_square_inputs_reads_back():
    text = replace(TINY, image_size=192, patch_size=16).to_json()
    assert '"image_size": 192' in text
    config = PaliGemmaConfig.from_json(text)
    assert config.image_size == 192 and config.grid_shape == (12, 12)
    assert config.to_json() == text


def _with_identity_blocks(params, config):
    """Zero the residual branches and make `head` the identity: encode = LN(patches + posemb)."""
    flat = {k: np.asarray(v) for k, v in flatten_dict(params).items()}
    for name in list(flat):
        if name.endswith(("out/kernel", "out/bias", "Dense_1/kernel", "Dense_1/bias")):
            flat[name] = np.zeros_like(flat[name])
    flat["img/head/kernel"] = np.eye(config.vision.width, config.text.width, dtype=np.float32)
    return unflatten_dict(flat)


@pytest.mark.parametrize("config", [WIDE, RECT], ids=lambda c: c.name)
def test_encoder_patches_are_row_major_ph_by_pw_tiles(config):
    params = _with_identity_blocks(pg.init_params(config, jax.random.key(0)), config)
    rng = np.random.default_rng(1)
    h, w = config.image_hw
    images = rng.uniform(-1, 1, (2, h, w, 3)).astype(np.float32)
    got = np.asarray(vit.encode(params["img"], config, images))

    (ph, pw), (gh, gw) = config.patch_hw, config.grid_shape
    tiles = images.reshape(2, gh, ph, gw, pw, 3).transpose(0, 1, 3, 2, 4, 5)  # B gh gw ph pw C
    emb = params["img"]["embedding"]
    x = np.einsum("bijpqc,pqcw->bijw", tiles, np.asarray(emb["kernel"])) + np.asarray(emb["bias"])
    x = x.reshape(2, gh * gw, -1) + np.asarray(params["img"]["pos_embedding"])
    x = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-6)
    assert got.shape == (2, gh * gw, config.text.width)
    np.testing.assert_allclose(got, x, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match=rf"\[B, {h}, {w}, 3\]"):
        vit.encode(params["img"], config, images.transpose(0, 2, 1, 3))  # portrait: refused


@pytest.mark.parametrize("config", [WIDE, RECT], ids=lambda c: c.name)
def test_init_matches_abstract_shapes_and_logits_run(config):
    params = pg.init_params(config, jax.random.key(0))
    abstract = flatten_dict(pg.abstract_params(config))
    concrete = flatten_dict(params)
    assert {k: v.shape for k, v in abstract.items()} == {k: v.shape for k, v in concrete.items()}
    ph, pw = config.patch_hw
    assert concrete["img/embedding/kernel"].shape == (ph, pw, 3, config.vision.width)
    assert concrete["img/pos_embedding"].shape == (1, config.num_image_tokens, config.vision.width)

    params = _random_params(config)  # init's zero `img/head` would hide the image
    rng = np.random.default_rng(2)
    images = rng.uniform(-1, 1, (2, *config.image_hw, 3)).astype(np.float32)
    tokens = np.repeat(rng.integers(0, config.vocab_size, (1, 5)), 2, axis=0).astype(np.int32)
    mask = np.ones_like(tokens)
    logits = np.asarray(pg.prefix_lm_logits(params, config, images, tokens, mask))
    assert logits.shape == (2, 5, config.vocab_size) and np.isfinite(logits).all()
    # The image is read (the two rows differ) and rows are independent (swapping swaps them).
    swapped = np.asarray(pg.prefix_lm_logits(params, config, images[::-1], tokens, mask))
    assert np.abs(swapped[::-1] - logits).max() < 1e-4 < np.abs(logits[0] - logits[1]).max()


def _random_params(config):
    """Every leaf random (a swapped or dropped tensor shows), in the config's dtype."""
    rng = np.random.default_rng(3)
    dtype = ml_dtypes.bfloat16 if config.param_dtype == "bfloat16" else np.float32
    return unflatten_dict({
        n: (rng.standard_normal(s.shape, np.float32) * 0.5).astype(dtype)
        for n, s in flatten_dict(pg.abstract_params(config)).items()
    })  # fmt: skip


@pytest.mark.parametrize("config", [WIDE, RECT], ids=lambda c: c.name)
def test_model_dir_round_trip_reproduces_logits(tmp_path, config):
    config = replace(config, param_dtype="bfloat16")
    params = _random_params(config)
    out = save_model_dir(tmp_path / "m", params, config, tokenizer=b"spm")
    assert json.loads((out / "config.json").read_text())["image_size"] == list(config.image_hw)
    loaded = load_any(out)
    assert loaded.config == config
    rng = np.random.default_rng(4)
    images = rng.uniform(-1, 1, (1, *config.image_hw, 3)).astype(np.float32)
    tokens = rng.integers(0, config.vocab_size, (1, 4)).astype(np.int32)
    mask = np.ones_like(tokens)
    before = pg.prefix_lm_logits(params, config, images, tokens, mask)
    after = pg.prefix_lm_logits(loaded.params, loaded.config, images, tokens, mask)
    np.testing.assert_array_equal(np.asarray(before), np.asarray(after))


def _bilinear(grid: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Aligned-corner bilinear resize of grid[h, w, C], written out by hand."""
    h, w = grid.shape[:2]
    out = np.empty((rows, cols, grid.shape[2]), np.float64)
    for i in range(rows):
        y = i * (h - 1) / (rows - 1) if rows > 1 else 0.0
        y0 = min(int(y), h - 2) if h > 1 else 0
        fy = y - y0
        for j in range(cols):
            x = j * (w - 1) / (cols - 1) if cols > 1 else 0.0
            x0 = min(int(x), w - 2) if w > 1 else 0
            fx = x - x0
            y1, x1 = min(y0 + 1, h - 1), min(x0 + 1, w - 1)
            out[i, j] = (
                (1 - fy) * (1 - fx) * grid[y0, x0] + (1 - fy) * fx * grid[y0, x1]
                + fy * (1 - fx) * grid[y1, x0] + fy * fx * grid[y1, x1]
            )  # fmt: skip
    return out


def test_resample_posemb_on_non_square_grids():
    # 2 x 2 -> 2 x 3: rows kept, a middle column that is the mean of its neighbours.
    table = np.array([[[0.0], [4.0], [10.0], [20.0]]], np.float32)  # [[0, 4], [10, 20]]
    out = vit.resample_posemb(table, (2, 3))
    np.testing.assert_allclose(out.reshape(2, 3), [[0, 2, 4], [10, 15, 20]], atol=1e-6)
    # A non-square table needs its grid; 2 x 3 -> 3 x 5 against the hand-written bilinear.
    rng = np.random.default_rng(5)
    table = rng.standard_normal((1, 6, 4)).astype(np.float32)
    out = vit.resample_posemb(table, (3, 5), old_grid=(2, 3))
    want = _bilinear(table.reshape(2, 3, 4).astype(np.float64), 3, 5)
    np.testing.assert_allclose(out.reshape(3, 5, 4), want, rtol=1e-5, atol=1e-5)
    # A square official table to a wide single-staff grid, e.g. 4 x 4 -> 2 x 8.
    table = rng.standard_normal((1, 16, 3)).astype(np.float32)
    out = vit.resample_posemb(table, (2, 8))
    want = _bilinear(table.reshape(4, 4, 3).astype(np.float64), 2, 8)
    np.testing.assert_allclose(out.reshape(2, 8, 3), want, rtol=1e-5, atol=1e-5)
    assert vit.resample_posemb(table, (4, 4)) is table
    with pytest.raises(ValueError, match="old_grid"):
        vit.resample_posemb(np.zeros((1, 6, 4), np.float32), (3, 5))


def test_square_npz_loads_into_a_wide_model_with_a_resampled_table(tmp_path):
    """An official-style square checkpoint fine-tuned at a wide single-staff shape."""
    square = replace(TINY, param_dtype="bfloat16")  # 2 x 2 grid
    params = _random_params(square)
    path = write_big_vision_npz(tmp_path / "square.npz", params)
    wide = replace(square, image_size=(28, 56))  # 2 x 4 grid
    loaded = load_big_vision_npz(path, wide)
    got = np.asarray(loaded.params["img"]["pos_embedding"], np.float32)
    old = np.asarray(params["img"]["pos_embedding"], np.float32).reshape(2, 2, -1)
    want = _bilinear(old.astype(np.float64), 2, 4).reshape(1, 8, -1)
    np.testing.assert_allclose(got, want, rtol=0.02, atol=0.02)  # bf16 storage
    # Columns 0 and 3 are the original corners, exactly.
    np.testing.assert_array_equal(got.reshape(2, 4, -1)[:, [0, 3]], old)


def test_npz_shape_inference_with_rectangular_patches_and_its_limit(tmp_path):
    rect = replace(TINY, param_dtype="bfloat16", image_size=(28, 56), patch_size=(14, 28))
    path = write_big_vision_npz(tmp_path / "rect.npz", _random_params(rect))
    inferred = load_any(path).config  # a square 2 x 2 grid of 14 x 28 patches
    assert inferred.image_size == (28, 56) and inferred.patch_size == (14, 28)
    wide = replace(TINY, param_dtype="bfloat16", image_size=(14, 42))  # 1 x 3: not square
    path = write_big_vision_npz(tmp_path / "wide.npz", _random_params(wide))
    with pytest.raises(CheckpointError, match="not a square grid"):
        load_any(path)
    assert load_any(path, config=wide).config == wide

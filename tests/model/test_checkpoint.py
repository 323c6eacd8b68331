"""Round trips through the big_vision `.npz` and our model directory, layout detection, and the
loader's error reports (every bad key named)."""

from __future__ import annotations

import json
from dataclasses import replace

import ml_dtypes
import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from omrgemma.checkpoint import (
    detect_layout,
    load_any,
    load_big_vision_npz,
    load_model_dir,
    save_model_dir,
    write_big_vision_npz,
)
from omrgemma.config import TINY
from omrgemma.errors import CheckpointError, ModelError, OutputExistsError
from omrgemma.nn import paligemma as pg
from omrgemma.nn.layers import flatten_dict, unflatten_dict

BF16 = replace(TINY, param_dtype="bfloat16")


@pytest.fixture(scope="module")
def params():
    """Random bf16 parameters (every leaf random, so a swapped or dropped tensor shows)."""
    abstract = flatten_dict(pg.abstract_params(BF16))
    rng = np.random.default_rng(0)
    flat = {n: rng.standard_normal(s.shape, np.float32).astype(ml_dtypes.bfloat16)
            for n, s in abstract.items()}  # fmt: skip
    return unflatten_dict(flat)


def assert_same(a, b):
    fa, fb = flatten_dict(a), flatten_dict(b)
    assert fa.keys() == fb.keys()
    for name in fa:
        assert fa[name].dtype == fb[name].dtype, name
        np.testing.assert_array_equal(np.asarray(fa[name]), np.asarray(fb[name]), err_msg=name)


def test_big_vision_npz_round_trip(tmp_path, params):
    path = write_big_vision_npz(tmp_path / "tiny.bf16.npz", params)
    with np.load(path, allow_pickle=False) as npz:  # stored the way big_vision stores bf16
        assert npz["llm/final_norm/scale"].dtype == np.dtype("V2")
    loaded = load_big_vision_npz(path, BF16)
    assert_same(loaded.params, params)
    # Without a config the architecture is read from the shapes.
    inferred = load_any(path)
    assert replace(inferred.config, name=BF16.name, final_logits_softcap=30.0) == BF16
    assert_same(inferred.params, params)


def test_npz_params_prefix_and_posemb_resampling(tmp_path, params):
    flat = {
        f"params/{k}": np.asarray(v).view(np.dtype("V2")) for k, v in flatten_dict(params).items()
    }
    np.savez(tmp_path / "prefixed.npz", **flat)
    bigger = replace(BF16, image_size=42)  # 2x2 -> 3x3 grid: the table is resampled
    loaded = load_big_vision_npz(tmp_path / "prefixed.npz", bigger)
    posemb = np.asarray(loaded.params["img"]["pos_embedding"], np.float32)
    assert posemb.shape == (1, 9, TINY.vision.width)
    old = np.asarray(params["img"]["pos_embedding"], np.float32)
    np.testing.assert_allclose(posemb[0, 4], old[0].mean(0), rtol=0.02, atol=0.02)  # the centre


def test_model_dir_round_trip(tmp_path, params):
    out = save_model_dir(tmp_path / "m", params, BF16, tokenizer=b"fake-spm", card="# tiny\n")
    assert sorted(p.name for p in out.iterdir()) == [
        "README.md", "config.json", "model.safetensors", "tokenizer.model",
    ]  # fmt: skip
    assert detect_layout(out) == "omrgemma"
    modes = {p.name: p.stat().st_mode & 0o777 for p in out.iterdir()}
    assert len(set(modes.values())) == 1, modes  # the weights too, not mkstemp's 0600
    loaded = load_any(out)
    assert loaded.config == BF16 and loaded.tokenizer_path == out / "tokenizer.model"
    assert_same(loaded.params, params)
    as_f32 = load_model_dir(out, param_dtype="float32")
    assert as_f32.params["llm"]["final_norm"]["scale"].dtype == np.float32
    with pytest.raises(OutputExistsError):
        save_model_dir(out, params, BF16)


def test_config_json_round_trip():
    assert type(TINY).from_json(TINY.to_json()) == TINY
    with pytest.raises(ValueError, match="format"):
        type(TINY).from_json(json.dumps({"format": "other/1"}))


@pytest.fixture()
def model_dir(tmp_path, params):
    return save_model_dir(tmp_path / "m", params, BF16)


def _edit_weights(directory, edit):
    tensors = load_file(directory / "model.safetensors")
    edit(tensors)
    save_file(tensors, directory / "model.safetensors")


def test_missing_key_is_named(model_dir):
    _edit_weights(model_dir, lambda t: t.pop("llm/layers/mlp/linear"))
    with pytest.raises(CheckpointError, match="missing key llm/layers/mlp/linear"):
        load_model_dir(model_dir)


def test_extra_key_is_named(model_dir):
    _edit_weights(model_dir, lambda t: t.update({"llm/surprise": np.zeros(3, np.float32)}))
    with pytest.raises(CheckpointError, match="unexpected key llm/surprise"):
        load_model_dir(model_dir)


def test_misshaped_key_is_named_and_all_problems_reported(model_dir):
    def edit(t):
        t["img/head/bias"] = np.zeros(5, np.float32)
        t.pop("llm/final_norm/scale")

    _edit_weights(model_dir, edit)
    with pytest.raises(CheckpointError) as info:
        load_model_dir(model_dir)
    message = str(info.value)
    assert "key img/head/bias has shape (5,), the config needs (32,)" in message
    assert "missing key llm/final_norm/scale" in message and "2 problems" in message


def test_transformers_lm_head_must_equal_the_embedding(tmp_path, params):
    """An untied lm_head is refused (PaliGemma ties it); missing shards are a ModelError."""
    from omrgemma.checkpoint import hf_placements
    from omrgemma.config import hf_vocab_size, to_hf_config

    flat = {k: np.asarray(v) for k, v in flatten_dict(params).items()}
    tensors = {}
    for pl in hf_placements(BF16):
        tensors[pl.theirs] = np.ascontiguousarray(pl.tf.to_theirs(flat[pl.ours][pl.index]))
    table = tensors["model.language_model.embed_tokens.weight"]
    pad = np.zeros((hf_vocab_size(BF16) - table.shape[0], table.shape[1]), table.dtype)
    tensors["model.language_model.embed_tokens.weight"] = np.concatenate([table, pad])
    (tmp_path / "config.json").write_text(json.dumps(to_hf_config(BF16)))
    save_file(tensors, tmp_path / "model.safetensors")
    assert detect_layout(tmp_path) == "transformers"
    assert_same(load_any(tmp_path).params, params)  # the padding rows are dropped
    tensors["lm_head.weight"] = np.ones_like(tensors["model.language_model.embed_tokens.weight"])
    save_file(tensors, tmp_path / "model.safetensors")
    with pytest.raises(CheckpointError, match="lm_head"):
        load_any(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(ModelError, match="missing"):
        load_any(tmp_path)


def test_not_a_model_is_a_model_error(tmp_path):
    with pytest.raises(ModelError, match="not a model"):
        load_any(tmp_path)

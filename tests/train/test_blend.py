"""Blending two stages of one model (`omrgemma.blend`) and `omrgemma train --export
--blend-with`: exact mixes, every mismatch refused by name, bf16 storage."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import replace

import ml_dtypes
import numpy as np
import pytest

from omrgemma.blend import blend_model_dirs, blend_params
from omrgemma.checkpoint import load_model_dir, save_model_dir
from omrgemma.config import TINY
from omrgemma.errors import CheckpointError, UsageError
from omrgemma.nn import paligemma as pg
from omrgemma.nn.layers import flatten_dict, unflatten_dict

BF16 = replace(TINY, param_dtype="bfloat16")


def random_params(seed: int) -> dict:
    abstract = flatten_dict(pg.abstract_params(BF16))
    rng = np.random.default_rng(seed)
    return unflatten_dict({name: rng.standard_normal(leaf.shape, np.float32).astype(ml_dtypes.bfloat16)
                           for name, leaf in abstract.items()})  # fmt: skip


def as_f32(params: dict) -> dict:
    return {k: np.asarray(v, np.float32) for k, v in flatten_dict(params).items()}


@pytest.fixture(scope="module")
def pair():
    return random_params(0), random_params(1)


@pytest.mark.parametrize("weight", [0.0, 0.25, 1.0])
def test_blend_is_the_weighted_mean_of_every_leaf(pair, weight):
    a, b = pair
    mixed, fa, fb = as_f32(blend_params(a, b, weight)), as_f32(a), as_f32(b)
    assert mixed.keys() == fa.keys()
    for name in fa:
        np.testing.assert_allclose(mixed[name], (1 - weight) * fa[name] + weight * fb[name],
                                   rtol=1e-6, err_msg=name)  # fmt: skip


def test_blend_refuses_other_layouts_and_weights(pair):
    a, b = pair
    flat = flatten_dict(b)
    name = "llm/final_norm/scale"
    with pytest.raises(CheckpointError, match=name):
        blend_params(a, unflatten_dict({k: v for k, v in flat.items() if k != name}), 0.5)
    with pytest.raises(CheckpointError, match=f"{name} has shape"):
        blend_params(a, unflatten_dict({**flat, name: np.zeros(3, np.float32)}), 0.5)
    with pytest.raises(UsageError, match="outside"):
        blend_params(a, b, 1.5)


def test_model_dirs_blend_into_bf16_with_their_tokenizer(tmp_path, pair):
    a, b = pair
    save_model_dir(tmp_path / "a", a, BF16, tokenizer=b"spm")
    save_model_dir(tmp_path / "b", b, BF16, tokenizer=b"spm")
    out = blend_model_dirs(tmp_path / "a", tmp_path / "b", tmp_path / "ab", weight=0.5)
    loaded = load_model_dir(out)
    assert loaded.config == BF16 and loaded.tokenizer_path.read_bytes() == b"spm"
    got, want = as_f32(loaded.params), as_f32(blend_params(a, b, 0.5))
    for name in want:
        assert flatten_dict(loaded.params)[name].dtype == ml_dtypes.bfloat16
        np.testing.assert_allclose(got[name], want[name], rtol=1e-2, atol=1e-2, err_msg=name)
    assert "0.5 x" in (out / "README.md").read_text()


def test_model_dirs_of_other_models_do_not_blend(tmp_path, pair):
    a, b = pair
    save_model_dir(tmp_path / "a", a, BF16, tokenizer=b"spm")
    save_model_dir(tmp_path / "other-tok", b, BF16, tokenizer=b"another")
    with pytest.raises(CheckpointError, match="tokenizers differ"):
        blend_model_dirs(tmp_path / "a", tmp_path / "other-tok", tmp_path / "x", weight=0.5)
    save_model_dir(tmp_path / "other-cfg", b, replace(BF16, name="else"), tokenizer=b"spm")
    with pytest.raises(CheckpointError, match="configs differ"):
        blend_model_dirs(tmp_path / "a", tmp_path / "other-cfg", tmp_path / "x", weight=0.5)
    assert not (tmp_path / "x").exists()


def test_export_blend_mixes_the_run_with_the_model(tmp_path, pair, capsys):
    from omrgemma import train_state
    from omrgemma.cli import main
    from omrgemma.train import TrainConfig
    from omrgemma.train_run import DataSettings

    a, b = pair
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    run = {"model": BF16.to_dict(), "data": dataclasses.asdict(DataSettings()),
           "train": dataclasses.asdict(TrainConfig())}  # fmt: skip
    (run_dir / "run.json").write_text(json.dumps(run))
    (run_dir / "tokenizer.model").write_bytes(b"spm")
    train_state.save_checkpoint(run_dir, {"params": b}, {"step": 1, "data_position": 8})
    save_model_dir(tmp_path / "before", a, BF16, tokenizer=b"spm")
    args = ["train", str(run_dir), "--export", str(tmp_path / "soup"),
            "--blend-with", str(tmp_path / "before"), "--blend", "0.25"]  # fmt: skip
    with pytest.raises(SystemExit) as exit:
        main(args)
    assert exit.value.code in (0, None), capsys.readouterr().err
    got, want = as_f32(load_model_dir(tmp_path / "soup").params), as_f32(blend_params(a, b, 0.25))
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-2, atol=1e-2, err_msg=name)
    assert "0.75 x" in (tmp_path / "soup" / "README.md").read_text()

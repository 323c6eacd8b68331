"""Encoder-only CTC training, its held-out reading, and moving a checkpoint to a new patch shape."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from synthetic import IDS, LetterMaker, encode

from omrgemma import ctc
from omrgemma.config import TINY
from omrgemma.ctc import CtcSettings
from omrgemma.data.pipeline import StreamSpec, take_examples
from omrgemma.train import TrainConfig, _fresh_state, make_optimizer, make_train_step
from omrgemma.train_run import CtcEvaluator, adapt_image_size, adapt_patch_size, model_fns

ONLY = CtcSettings(weight=1.0, upsample=4, bottleneck=8, encoder_only=True)


def _letters(n: int = 8):
    spec = StreamSpec(seed=3, batch_size=n, shard_size=n, text_buckets=(8,), special=IDS)
    return take_examples(spec, LetterMaker(longest=3, size=TINY.image_size), encode, n)[0]


def _trained(steps: int):
    fns = model_fns(TINY, ONLY)
    cfg = TrainConfig(batch_size=8, learning_rate=1e-2, warmup_steps=1, freeze="^llm/")
    state = _fresh_state(fns, cfg, None)
    step = jax.jit(make_train_step(fns, make_optimizer(cfg, state["params"]), cfg))
    batch = _letters()
    history = []
    for _ in range(steps):
        state, metrics = step(state, batch)
        history.append(metrics)
    return state, history, batch


def test_encoder_only_training_learns_ctc_and_leaves_the_decoder_alone():
    fns = model_fns(TINY, ONLY)
    start = _fresh_state(fns, TrainConfig(), None)["params"]
    state, history, _ = _trained(40)
    assert set(history[0]) >= {"loss", "aux"} and "nll" not in history[0]
    assert float(history[-1]["aux"]) < 0.3 * float(history[0]["aux"])
    for before, after in zip(
        jax.tree.leaves(start["llm"]), jax.tree.leaves(state["params"]["llm"]), strict=True
    ):
        np.testing.assert_array_equal(np.asarray(before), np.asarray(after))
    moved = np.asarray(state["params"]["img"]["embedding"]["kernel"])
    assert not np.allclose(moved, np.asarray(start["img"]["embedding"]["kernel"]))


def test_best_paths_merge_repeats_and_drop_blanks():
    frames = jnp.asarray(np.eye(6)[[[2, 2, 0, 2, 3, 3], [0, 0, 5, 0, 0, 0]]], jnp.float32)
    assert ctc.best_paths(frames, blank=0) == [[2, 2, 3], [5]]


def test_the_evaluator_reads_a_memorised_batch_and_not_an_untrained_one():
    # 60 steps left the batch half-learnt (CTC 0.46, PER 28 %) with jax 0.10.2 / optax 0.2.8;
    # by 100 it is memorised (PER 0)
    state, _, batch = _trained(100)
    evaluator = CtcEvaluator(config=TINY, settings=ONLY, batches=[batch])
    trained = evaluator(state["params"])
    fresh = evaluator(_fresh_state(model_fns(TINY, ONLY), TrainConfig(), None)["params"])
    assert trained["heldout_per"] < 20.0 < fresh["heldout_per"]
    assert trained["heldout_ctc"] < fresh["heldout_ctc"]


def test_a_new_patch_shape_gets_a_fresh_embedding_and_keeps_the_rest():
    from omrgemma.nn import paligemma as pg

    params = pg.init_params(TINY, jax.random.PRNGKey(0))  # 28x28 in 14x14 patches: a 2x2 grid
    tall = dataclasses.replace(TINY, image_size=(28, 56), patch_size=(28, 7))  # a 1x8 grid
    moved = adapt_image_size(adapt_patch_size(params, tall, jax.random.PRNGKey(1)), (2, 2), (1, 8))
    assert moved["img"]["embedding"]["kernel"].shape == (28, 7, 3, TINY.vision.width)
    assert moved["img"]["pos_embedding"].shape == (1, 8, TINY.vision.width)
    same = (
        jax.tree.leaves(params["img"]["Transformer"]),
        jax.tree.leaves(moved["img"]["Transformer"]),
    )
    for a, b in zip(*same, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert moved["llm"] is params["llm"]
    out = pg.encode_image(moved, tall, jnp.zeros((1, 28, 56, 3)))
    assert out.shape == (1, 8, TINY.text.width)


@pytest.mark.parametrize("text", ["64x8", "16"])
def test_patch_size_option_parses(text):
    from omrgemma.cli.train import _parse_size

    assert _parse_size(text, "--patch-size") == ((64, 8) if "x" in text else 16)


def test_a_patch_that_does_not_divide_the_image_is_a_usage_error(tmp_path, capsys):
    from omrgemma.cli import main

    try:
        main(["train", str(tmp_path / "run"), "--image-size", "64x512", "--patch-size", "64x7"])
    except SystemExit as exit:
        code = exit.code
    err = capsys.readouterr().err
    assert code == 2 and "not a multiple of patch 64x7" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_a_silent_head_sends_no_gradient_to_the_encoder_at_first():
    from omrgemma.nn import paligemma as pg

    params = model_fns(TINY).init(jax.random.PRNGKey(0))  # a projector that is not zero
    batch = _letters()
    targets, weights = batch["tokens"][:, 1:], batch["mask_loss"][:, 1:].astype(np.float32)
    images = jnp.asarray(batch["images"], jnp.float32)[..., None].repeat(3, -1) / 127.5 - 1

    def loss(img, head):
        zimg = pg.encode_image({"img": img}, TINY, images)
        return ctc.ctc_loss(ctc.frame_logits(head, TINY, ONLY, zimg), targets, weights, ONLY)

    for silent, moves in ((True, False), (False, True)):
        head = ctc.init_head(TINY, ONLY, jax.random.PRNGKey(1), silent=silent)
        grads = jax.grad(loss, argnums=(0, 1))(params["img"], head)
        encoder = max(float(jnp.abs(g).max()) for g in jax.tree.leaves(grads[0]))
        assert (encoder > 0) == moves
        assert float(jnp.abs(grads[1]["out"]).max()) > 0  # the head itself learns


def test_a_new_run_starts_from_a_run_folder_with_its_ctc_head(tmp_path):
    import json

    from omrgemma import train_state
    from omrgemma.train_run import DataSettings, _init_from_checkpoint, checkpoint_config

    run = {
        "model": TINY.to_dict(),
        "data": dataclasses.asdict(DataSettings()),
        "train": dataclasses.asdict(TrainConfig()),
        "ctc": dataclasses.asdict(ONLY),
    }
    (tmp_path / "run.json").write_text(json.dumps(run))
    state, _, _ = _trained(3)
    train_state.save_checkpoint(tmp_path, state, {"step": 3, "data_position": 24})
    assert checkpoint_config(tmp_path) == TINY
    params = _init_from_checkpoint(str(tmp_path), TINY, "keep")
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(state["params"]), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert "ctc" in params
    wide = dataclasses.replace(TINY, image_size=(28, 56), patch_size=(28, 7))
    moved = _init_from_checkpoint(str(tmp_path), wide, "keep")  # one patch row, not two
    assert "ctc" not in moved and moved["img"]["embedding"]["kernel"].shape[:2] == (28, 7)

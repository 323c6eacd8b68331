"""The training-only CTC head on the image tokens: alignment, loss, training and export."""

from __future__ import annotations

import dataclasses
import json

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
from omrgemma.train_run import model_fns

ON = CtcSettings(weight=0.5, upsample=4, bottleneck=8)


def test_left_align_moves_the_suffix_to_the_start_in_order():
    targets = jnp.asarray([[7, 9, 4, 5, 1, 0], [8, 6, 6, 1, 0, 0]])
    weights = jnp.asarray([[0, 0, 1, 1, 1, 0], [0, 1, 1, 1, 0, 0]], jnp.float32)
    labels, paddings = ctc.left_align(targets, weights)
    np.testing.assert_array_equal(labels[:, :3], [[4, 5, 1], [6, 6, 1]])
    np.testing.assert_array_equal(paddings, [[0, 0, 0, 1, 1, 1], [0, 0, 0, 1, 1, 1]])


def _one_hot_frames(path: list[int], vocab: int = 6, sharp: float = 30.0) -> jax.Array:
    return jnp.asarray(np.eye(vocab)[path] * sharp, jnp.float32)[None]


def test_loss_is_near_zero_for_a_confident_correct_alignment_and_large_otherwise():
    # frames: a a <blank> a b <blank> -> labels "a a b" (ids 2 2 3), blank 0
    frames = _one_hot_frames([2, 2, 0, 2, 3, 0])
    targets = jnp.asarray([[5, 2, 2, 3, 0]])  # a prompt token first, then the suffix
    weights = jnp.asarray([[0, 1, 1, 1, 0]], jnp.float32)
    settings = CtcSettings(weight=1.0)
    assert float(ctc.ctc_loss(frames, targets, weights, settings)) < 1e-3
    wrong = jnp.asarray([[5, 2, 3, 3, 0]])
    assert float(ctc.ctc_loss(frames, wrong, weights, settings)) > 5.0


def test_targets_longer_than_the_frames_are_dropped_not_infinite():
    frames = _one_hot_frames([2, 0, 3])
    short = (jnp.asarray([[2, 3, 0, 0, 0]]), jnp.asarray([[1, 1, 0, 0, 0]], jnp.float32))
    long = (jnp.asarray([[2, 3, 4, 5, 4]]), jnp.asarray([[1, 1, 1, 1, 1]], jnp.float32))
    targets = jnp.concatenate([short[0], long[0]])
    weights = jnp.concatenate([short[1], long[1]])
    settings = CtcSettings(weight=1.0)
    both = ctc.ctc_loss(jnp.concatenate([frames, frames]), targets, weights, settings)
    alone = ctc.ctc_loss(frames, *short, settings)
    assert np.isfinite(float(both))
    np.testing.assert_allclose(float(both), float(alone), rtol=1e-6)
    grad = jax.grad(lambda f: ctc.ctc_loss(f, targets, weights, settings))(
        jnp.concatenate([frames, frames])
    )
    assert bool(jnp.isfinite(grad).all())


def test_a_patch_column_feeds_only_its_own_frames():
    config = dataclasses.replace(TINY, image_size=(28, 56))  # 2 x 4 patch grid
    head = ctc.init_head(config, ON, jax.random.PRNGKey(0))
    tokens = jax.random.normal(jax.random.PRNGKey(1), (1, 8, TINY.text.width))
    base = ctc.frame_logits(head, config, ON, tokens)
    assert base.shape == (1, 4 * ON.upsample, TINY.vocab_size)
    # change the token at row 1, column 2 (row-major index 1 * 4 + 2)
    moved = ctc.frame_logits(head, config, ON, tokens.at[0, 6].add(1.0))
    changed = np.abs(np.asarray(moved - base)).max(axis=-1)[0] > 1e-6
    expected = np.zeros(4 * ON.upsample, bool)
    expected[2 * ON.upsample : 3 * ON.upsample] = True
    np.testing.assert_array_equal(changed, expected)


def _letters():
    spec = StreamSpec(seed=3, batch_size=8, shard_size=8, text_buckets=(8,), special=IDS)
    return take_examples(spec, LetterMaker(longest=3, size=TINY.image_size), encode, 8)[0]


def test_training_with_ctc_lowers_it_and_reaches_the_encoder():
    fns = model_fns(TINY, ON)
    assert fns.logits_aux is not None and model_fns(TINY).logits_aux is None
    cfg = TrainConfig(batch_size=8, learning_rate=1e-2, warmup_steps=1, label_smoothing=0.0)
    state = _fresh_state(fns, cfg, None)
    assert set(state["params"]) == {"img", "llm", "ctc"}
    before = np.asarray(state["params"]["img"]["embedding"]["kernel"])
    step = jax.jit(make_train_step(fns, make_optimizer(cfg, state["params"]), cfg))
    batch = _letters()
    state, first = step(state, batch)
    for _ in range(30):
        state, last = step(state, batch)
    assert float(last["aux"]) < 0.5 * float(first["aux"])
    assert not np.allclose(before, np.asarray(state["params"]["img"]["embedding"]["kernel"]))


def test_export_leaves_the_head_out_and_loads_as_a_plain_model(tmp_path):
    from omrgemma import train_state
    from omrgemma.checkpoint import load_model_dir
    from omrgemma.nn import paligemma as pg
    from omrgemma.train_run import DataSettings, export_model

    run = {
        "model": TINY.to_dict(),
        "data": dataclasses.asdict(DataSettings()),
        "train": dataclasses.asdict(TrainConfig()),
        "ctc": dataclasses.asdict(ON),
    }
    (tmp_path / "run.json").write_text(json.dumps(run))
    (tmp_path / "tokenizer.model").write_bytes(b"tokenizer")
    params = model_fns(TINY, ON).init(jax.random.PRNGKey(0))
    train_state.save_checkpoint(tmp_path, {"params": params}, {"step": 1, "data_position": 8})
    out = export_model(tmp_path, tmp_path / "model", card="card")
    loaded = load_model_dir(out)
    assert "ctc" not in loaded.params
    images = jnp.zeros((1, 28, 28, 3))
    tokens = jnp.asarray([[IDS.bos, IDS.sep, 5]])
    want = pg.prefix_lm_logits(params, TINY, images, tokens, jnp.asarray([[0, 0, 1]]))
    got = pg.prefix_lm_logits(
        loaded.params, loaded.config, images, tokens, jnp.asarray([[0, 0, 1]])
    )
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=0.1)  # bf16 weights


@pytest.mark.parametrize("size", ["64x512", "224"])
def test_image_size_option_parses(size):
    from omrgemma.cli.train import _parse_size

    assert _parse_size(size) == ((64, 512) if "x" in size else 224)


def test_a_checkpoint_moves_to_a_new_input_size_by_resampling_positions():
    from omrgemma.nn import paligemma as pg
    from omrgemma.train_run import adapt_image_size

    params = pg.init_params(TINY, jax.random.PRNGKey(0))
    wide = adapt_image_size(params, (2, 2), (2, 4))
    assert wide["img"]["pos_embedding"].shape == (1, 8, TINY.vision.width)
    table = np.asarray(params["img"]["pos_embedding"]).reshape(2, 2, -1)
    new = np.asarray(wide["img"]["pos_embedding"]).reshape(2, 4, -1)
    np.testing.assert_allclose(new[:, 0], table[:, 0], atol=1e-6)  # corners are kept
    np.testing.assert_allclose(new[:, -1], table[:, -1], atol=1e-6)
    config = dataclasses.replace(TINY, image_size=(28, 56))
    images = jnp.zeros((1, 28, 56, 3))
    assert pg.encode_image(wide, config, images).shape == (1, 8, TINY.text.width)


def test_invisible_pieces_are_left_out_of_the_ctc_target():
    pieces = ["<pad>", "<eos>", "<bos>", "<unk>", "\t", "\n", "**kern", "*-", "*staff2", "*clefG2",
              "*M3/4", "*met(c|)", "*^", "4cc", "=", "*k[f#]"]  # fmt: skip
    skip = ctc.invisible_ids(pieces, eos=1)
    assert [pieces[i] for i in skip] == ["<eos>", "\t", "\n", "**kern", "*-", "*staff2",
                                         "*met(c|)", "*^"]  # fmt: skip
    # frames reading only "4cc =" fit a target that also holds newlines, header and <eos>
    frames = jnp.asarray(np.eye(16)[[13, 0, 14]] * 30.0, jnp.float32)[None]
    targets = jnp.asarray([[6, 5, 13, 5, 14, 5, 7, 5, 1]])
    weights = jnp.ones(targets.shape, jnp.float32)
    settings = CtcSettings(weight=1.0, skip=skip)
    assert float(ctc.ctc_loss(frames, targets, weights, settings)) < 1e-3
    assert float(ctc.ctc_loss(frames, targets, weights, CtcSettings(weight=1.0))) == 0.0  # dropped

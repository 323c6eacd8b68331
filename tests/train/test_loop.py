"""The training loop on a stand-in model: loss falls, NaN steps are skipped, freezing, resume."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from standin import STANDIN
from synthetic import IDS, LetterMaker, encode

from omrgemma import train_state
from omrgemma.data.pipeline import ShardStream, StreamSpec, take_examples
from omrgemma.train import (
    TrainConfig,
    _fresh_state,
    learning_rate_at,
    loss_fn,
    make_optimizer,
    make_train_step,
    train,
)

SPEC = StreamSpec(seed=3, batch_size=8, shard_size=32, text_buckets=(8, 16), special=IDS)
CFG = TrainConfig(batch_size=8, total_steps=200, learning_rate=3e-3, warmup_steps=2, log_every=2)


def fixed_batch():
    return take_examples(SPEC, LetterMaker(), encode, 8)[0]


def run_steps(cfg, state, batches):
    tx = make_optimizer(cfg, state["params"])
    step = jax.jit(make_train_step(STANDIN, tx, cfg))
    metrics = []
    for batch in batches:
        state, m = step(state, batch)
        metrics.append(m)
    return state, metrics


def test_layout_of_a_batch_puts_loss_on_suffix_and_eos_only():
    batch = fixed_batch()
    row = 0
    n = int(batch["mask_loss"][row].sum())
    tokens = batch["tokens"][row]
    assert tokens[0] == IDS.bos and tokens[1] == IDS.sep
    # the scored tokens are the letters then <eos>, and nothing after
    scored = tokens[batch["mask_loss"][row] == 1]
    assert scored[-1] == IDS.eos and len(scored) == n and all(t >= 4 for t in scored[:-1])
    assert batch["mask_ar"][row, :2].tolist() == [0, 0]
    assert batch["images"].dtype == np.uint8 and batch["images"].shape == (8, 8, 16)


def test_steps_on_a_fixed_batch_lower_the_loss():
    batch = fixed_batch()
    state = _fresh_state(STANDIN, CFG, None)
    loss0, _ = loss_fn(state["params"], batch, STANDIN.logits, 0.1)
    state, metrics = run_steps(CFG, state, [batch] * 5)
    loss5, _ = loss_fn(state["params"], batch, STANDIN.logits, 0.1)
    assert float(metrics[0]["loss"]) == pytest.approx(float(loss0), rel=1e-5)
    assert float(loss5) < float(loss0) - 0.3


def test_non_finite_gradients_skip_the_update():
    batch = dict(fixed_batch())
    images = batch["images"].astype(np.float32) / 127.5 - 1
    images = np.repeat(images[..., None], 3, -1)
    images[0, 0, 0, 0] = np.nan
    state = _fresh_state(STANDIN, CFG, None)
    before = jax.tree.map(np.asarray, state["params"])
    state, metrics = run_steps(CFG, state, [dict(batch, images=images)])
    assert int(metrics[0]["skipped"]) == 1
    jax.tree.map(np.testing.assert_array_equal, before, jax.tree.map(np.asarray, state["params"]))


def test_frozen_parameters_do_not_move():
    cfg = dataclasses.replace(CFG, freeze="^img/")
    state = _fresh_state(STANDIN, cfg, None)
    before = jax.tree.map(np.asarray, state["params"])
    state, _ = run_steps(cfg, state, [fixed_batch()] * 2)
    np.testing.assert_array_equal(before["img"]["patch"], state["params"]["img"]["patch"])
    np.testing.assert_array_equal(before["img"]["pos"], state["params"]["img"]["pos"])
    assert not np.allclose(before["llm"]["qkv"], state["params"]["llm"]["qkv"])


def test_schedule_warms_up_then_decays_to_the_end_fraction():
    cfg = TrainConfig(learning_rate=1.0, warmup_steps=10, total_steps=110, end_lr_fraction=0.1)
    assert learning_rate_at(cfg, 5) == pytest.approx(0.5)
    assert learning_rate_at(cfg, 10) == pytest.approx(1.0)
    assert learning_rate_at(cfg, 60) == pytest.approx(0.55)
    assert learning_rate_at(cfg, 110) == pytest.approx(0.1)


def _data(position):
    return ShardStream(SPEC, LetterMaker(), encode, start=position, workers=0)


def test_resume_equals_uninterrupted(tmp_path):
    straight = train(run_dir=tmp_path / "a", model=STANDIN, make_data=_data, cfg=CFG, max_steps=6)
    train(run_dir=tmp_path / "b", model=STANDIN, make_data=_data, cfg=CFG, max_steps=3)
    meta = train_state.read_meta(train_state.latest_checkpoint(tmp_path / "b"))
    assert meta["step"] == 3 and meta["data_position"] == 24
    resumed = train(
        run_dir=tmp_path / "b", model=STANDIN, make_data=_data, cfg=CFG, max_steps=3, resume=True
    )
    assert int(resumed["step"]) == 6
    for a, b in zip(jax.tree.leaves(straight), jax.tree.leaves(resumed), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_checkpoint_rejects_a_different_model(tmp_path):
    train(run_dir=tmp_path, model=STANDIN, make_data=_data, cfg=CFG, max_steps=1)
    template = jax.eval_shape(lambda: _fresh_state(STANDIN, CFG, None))
    template["params"]["llm"]["extra"] = jax.ShapeDtypeStruct((2,), jnp.float32)
    with pytest.raises(Exception, match="llm/extra"):
        train_state.load_checkpoint(train_state.latest_checkpoint(tmp_path), template)


def test_evaluator_measures_the_image_gap_and_ser():
    from synthetic import decode

    from omrgemma.train import Evaluator

    batches = take_examples(SPEC, LetterMaker(), encode, 16)
    refs = [
        decode(t[m == 1]) for b in batches for t, m in zip(b["tokens"], b["mask_loss"], strict=True)
    ]
    state = _fresh_state(STANDIN, CFG, None)
    state, _ = run_steps(CFG, state, batches * 20)  # learns to read the bars a little
    perfect = Evaluator(model=STANDIN, batches=batches, references=refs,
                        transcribe=lambda params, b: [decode(t[m == 1]) for t, m in zip(b["tokens"], b["mask_loss"], strict=True)])  # fmt: skip
    out = perfect(state["params"])
    assert out["heldout_ser"] == 0.0 and out["examples"][0]["ref"] == refs[0]
    assert out["image_gap"] == pytest.approx(out["shuffled_nll"] - out["heldout_nll"])
    assert out["image_gap"] > 0.1  # the trained stand-in reads the image: shuffling hurts
    wrong = Evaluator(model=STANDIN, batches=batches, references=refs,
                      transcribe=lambda params, b: ["a"] * len(b["tokens"]))  # fmt: skip
    assert wrong(state["params"])["heldout_ser"] > 30.0

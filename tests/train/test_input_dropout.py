"""Input-token dropout: only the suffix's inputs are corrupted, targets and prompt never."""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
from test_real_model import CFG, FNS, letter_batch

from omrgemma.train import (
    UNK_ID,
    _fresh_state,
    drop_inputs,
    loss_fn,
    make_optimizer,
    make_train_step,
)


def test_only_suffix_inputs_are_replaced_at_about_the_rate():
    batch = {
        k: np.tile(v, (16, 1) if v.ndim == 2 else (16, 1, 1)) for k, v in letter_batch().items()
    }
    out = drop_inputs(batch, 0.3, jax.random.PRNGKey(0))
    inputs, tokens = np.asarray(out["inputs"]), batch["tokens"]
    np.testing.assert_array_equal(out["tokens"], tokens)  # targets come from here
    changed = inputs != tokens
    assert not changed[batch["mask_loss"] == 0].any()  # <bos>, prompt, separator, padding
    assert (inputs[changed] == UNK_ID).all()
    share = changed.sum() / (batch["mask_loss"] == 1).sum()
    assert 0.2 < share < 0.4


def test_the_loss_sees_corrupted_inputs_but_the_true_targets():
    batch = letter_batch()
    params = FNS.init(jax.random.PRNGKey(0))
    clean, _ = loss_fn(params, batch, FNS.logits, 0.0)
    dropped = drop_inputs(batch, 1.0, jax.random.PRNGKey(1))
    noisy, metrics = loss_fn(params, dropped, FNS.logits, 0.0)
    assert float(noisy) != float(clean)
    # all inputs dropped: the loss equals that of a batch whose suffix tokens are <unk> in input
    manual = dict(batch, inputs=np.where(batch["mask_loss"] == 1, UNK_ID, batch["tokens"]))
    np.testing.assert_allclose(float(loss_fn(params, manual, FNS.logits, 0.0)[0]), float(noisy))


def test_a_training_step_with_input_dropout_runs_and_learns():
    cfg = dataclasses.replace(CFG, input_dropout=0.2)
    state = _fresh_state(FNS, cfg, None)
    step = jax.jit(make_train_step(FNS, make_optimizer(cfg, state["params"]), cfg))
    batch = letter_batch()
    state, first = step(state, batch)
    for _ in range(20):
        state, last = step(state, batch)
    assert float(last["loss"]) < float(first["loss"])

"""Training the real PaliGemma implementation (TINY config): overfitting, export, sharding."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from synthetic import IDS, LetterMaker, decode, encode

from omrgemma.config import TINY
from omrgemma.data.pipeline import StreamSpec, take_examples
from omrgemma.train import (
    TrainConfig,
    _fresh_state,
    images_to_model,
    make_optimizer,
    make_train_step,
)
from omrgemma.train_run import model_fns

FNS = model_fns(TINY)
SPEC = StreamSpec(seed=11, batch_size=8, shard_size=8, text_buckets=(8,), special=IDS)
CFG = TrainConfig(batch_size=8, total_steps=400, learning_rate=1e-2, warmup_steps=10,
                  end_lr_fraction=0.1, label_smoothing=0.0, weight_decay=0.0)  # fmt: skip


def letter_batch():
    return take_examples(SPEC, LetterMaker(longest=3, size=TINY.image_size), encode, 8)[0]


def fit(batch, steps):
    state = _fresh_state(FNS, CFG, None)
    tx = make_optimizer(CFG, state["params"])
    step = jax.jit(make_train_step(FNS, tx, CFG))
    for _ in range(steps):
        state, metrics = step(state, batch)
    return state, metrics


def references(batch):
    return [decode(t[m == 1]) for t, m in zip(batch["tokens"], batch["mask_loss"], strict=True)]


@pytest.mark.slow
def test_overfitting_eight_systems_gives_exact_greedy_transcriptions():
    from omrgemma.decode import generate

    batch = letter_batch()
    state, metrics = fit(batch, 250)
    assert float(metrics["nll"]) < 0.05
    out = generate(
        state["params"], TINY, np.asarray(images_to_model(batch["images"])),
        [[IDS.bos, IDS.sep]] * 8, max_new_tokens=6, eos_id=IDS.eos, pad_id=IDS.pad,
    )  # fmt: skip
    assert [decode(r.tokens) for r in out] == references(batch)
    assert all(r.stopped_on_eos for r in out)


def test_a_saved_model_dir_reproduces_the_logits(tmp_path):
    from omrgemma.checkpoint import load_model_dir, save_model_dir
    from omrgemma.nn import paligemma as pg

    batch = letter_batch()
    # "fine-tuned": every parameter moved away from its initial value (norm scales included)
    params = pg.init_params(TINY, jax.random.PRNGKey(0))
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.PRNGKey(1), len(leaves))
    params = jax.tree.unflatten(
        treedef,
        [x + 0.05 * jax.random.normal(k, x.shape) for x, k in zip(leaves, keys, strict=True)],
    )
    save_model_dir(tmp_path / "m", params, TINY, tokenizer=b"not a real tokenizer")
    loaded = load_model_dir(tmp_path / "m")
    assert (tmp_path / "m" / "tokenizer.model").read_bytes() == b"not a real tokenizer"
    args = (images_to_model(batch["images"]), batch["tokens"], batch["mask_ar"])
    want = pg.prefix_lm_logits(params, TINY, *args)
    got = pg.prefix_lm_logits(loaded.params, loaded.config, *args)
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-6, atol=1e-6)
    assert loaded.config == TINY


SHARDED = """
import json, sys
import jax, numpy as np
sys.path.insert(0, {here!r})
from test_real_model import CFG, letter_batch
if {standin}:
    from standin import STANDIN as FNS
    from synthetic import LetterMaker, encode
    from test_loop import fixed_batch as letter_batch
else:
    from test_real_model import FNS
from omrgemma.train import _fresh_state, compile_train_step, make_mesh, make_optimizer
from omrgemma.train import make_train_step
import dataclasses
out = {{}}
batch = letter_batch()
for name, n, fsdp in (("single", 1, False), ("dp", 8, False), ("fsdp", 8, True)):
    cfg = dataclasses.replace(CFG, fsdp=fsdp)
    state = _fresh_state(FNS, cfg, None)
    tx = make_optimizer(cfg, state["params"])
    step, state = compile_train_step(make_train_step(FNS, tx, cfg), state, make_mesh(n), fsdp)
    for _ in range(3):
        state, m = step(state, batch)
    leaves = jax.tree.leaves(state["params"])
    out[name] = [np.asarray(x).ravel().tolist() for x in leaves]
    if fsdp:
        out["fsdp_sharded"] = sum(len(x.sharding.device_set) == 8 and not x.sharding.is_fully_replicated
                                  for x in leaves)
print(json.dumps(out))
"""


@pytest.mark.parametrize(
    "standin", [True, pytest.param(False, marks=pytest.mark.slow)], ids=["standin", "tiny"]
)
def test_data_parallel_and_fsdp_equal_single_device(standin):
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8")
    here = str(Path(__file__).parent)
    proc = subprocess.run(
        [sys.executable, "-c", SHARDED.format(here=here, standin=standin)], env=env,
        capture_output=True,
        text=True, timeout=300, cwd=Path(__file__).parents[2],
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    import json

    out = json.loads(proc.stdout.strip().splitlines()[-1])
    # the FSDP run's leaves really are split over the 8 devices
    assert out["fsdp_sharded"] >= 3
    for name in ("dp", "fsdp"):
        for a, b in zip(out["single"], out[name], strict=True):
            # Adam divides by sqrt(v): where a gradient is ~0, summation-order noise becomes an
            # update of up to the learning rate (2e-3 at step 3), hence the absolute tolerance.
            np.testing.assert_allclose(b, a, rtol=2e-4, atol=2e-4)


@pytest.mark.slow  # the stand-in test in test_loop.py covers the mechanism by default
@pytest.mark.parametrize("pattern", ["^img/"])
def test_freezing_the_encoder_of_the_real_model(pattern):
    cfg = dataclasses.replace(CFG, freeze=pattern)
    state = _fresh_state(FNS, cfg, None)
    before = jax.tree.map(np.asarray, state["params"])
    tx = make_optimizer(cfg, state["params"])
    step = jax.jit(make_train_step(FNS, tx, cfg))
    for _ in range(2):  # the warm-up learning rate is 0 at step 0
        state, _ = step(state, letter_batch())
    jax.tree.map(
        np.testing.assert_array_equal,
        before["img"],
        jax.tree.map(np.asarray, state["params"]["img"]),
    )
    assert not np.array_equal(
        before["llm"]["embedder"]["input_embedding"],
        state["params"]["llm"]["embedder"]["input_embedding"],
    )


def test_vocabulary_grows_keeping_rows_or_is_replaced():
    from omrgemma.nn import paligemma as pg
    from omrgemma.train_run import adapt_vocabulary

    params = pg.init_params(TINY, jax.random.PRNGKey(0))
    table = np.asarray(params["llm"]["embedder"]["input_embedding"])
    grown = adapt_vocabulary(params, 300, jax.random.PRNGKey(1), keep_rows=True)
    new = np.asarray(grown["llm"]["embedder"]["input_embedding"])
    assert new.shape == (300, TINY.text.width)
    np.testing.assert_array_equal(new[:256], table)
    # added rows sit around the old mean with the old spread
    assert abs(new[256:].mean() - table.mean()) < 0.1
    assert 0.5 < new[256:].std(axis=0).mean() / table.std(axis=0).mean() < 1.5
    replaced = adapt_vocabulary(params, 64, jax.random.PRNGKey(1), keep_rows=False)
    rows = np.asarray(replaced["llm"]["embedder"]["input_embedding"])
    assert rows.shape == (64, TINY.text.width) and not np.allclose(rows, table[:64])
    np.testing.assert_array_equal(
        replaced["img"]["embedding"]["kernel"], params["img"]["embedding"]["kernel"]
    )


def test_from_scratch_init_lets_images_differ():
    """Guards the plateau fix: with big_vision's zero `img/head`, all image tokens are equal."""
    from omrgemma.nn import paligemma as pg

    params = FNS.init(jax.random.PRNGKey(0))
    images = images_to_model(letter_batch()["images"])
    tokens = np.asarray(pg.encode_image(params, TINY, images))
    assert tokens.std(axis=0).mean() > 0.1  # different images -> different image tokens
    zero_head = pg.encode_image(pg.init_params(TINY, jax.random.PRNGKey(0)), TINY, images)
    assert float(np.abs(np.asarray(zero_head)).max()) == 0.0

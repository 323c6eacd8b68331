"""LoRA on the TINY model: an exact start, a base that never moves, a small optimizer state,
known-value merges, a plain exported model, and the CLI option."""

from __future__ import annotations

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from synthetic import IDS, LetterMaker, encode

from omrgemma import lora
from omrgemma.config import PALIGEMMA2_3B_224, TINY
from omrgemma.ctc import CtcSettings
from omrgemma.data.pipeline import StreamSpec, take_examples
from omrgemma.lora import LoraSettings
from omrgemma.nn import paligemma as pg
from omrgemma.nn.layers import flatten_dict
from omrgemma.train import (
    TrainConfig,
    _fresh_state,
    images_to_model,
    loss_fn,
    make_optimizer,
    make_train_step,
)
from omrgemma.train_run import model_fns

SETTINGS = LoraSettings(rank=4, alpha=8.0)
FNS = lora.wrap_model_fns(model_fns(TINY), SETTINGS)
CFG = TrainConfig(batch_size=8, learning_rate=1e-2, warmup_steps=1, label_smoothing=0.0,
                  weight_decay=0.0, freeze=SETTINGS.frozen_pattern)  # fmt: skip


def letter_batch():
    spec = StreamSpec(seed=11, batch_size=8, shard_size=8, text_buckets=(8,), special=IDS)
    return take_examples(spec, LetterMaker(longest=3, size=TINY.image_size), encode, 8)[0]


def model_inputs(batch):
    return (images_to_model(batch["images"]), batch["tokens"], batch["mask_ar"],
            batch["input_mask"])  # fmt: skip


def size(tree) -> int:
    return sum(int(np.size(x)) for x in jax.tree.leaves(tree))


def bits(x) -> np.ndarray:
    return np.asarray(x).view(np.uint8)


def train(fns, cfg, steps):
    state = _fresh_state(fns, cfg, None)
    before = jax.tree.map(np.asarray, state["params"])
    step = jax.jit(make_train_step(fns, make_optimizer(cfg, state["params"]), cfg))
    batch = letter_batch()
    history = []
    for _ in range(steps):
        state, metrics = step(state, batch)
        history.append(float(metrics["loss"]))
    return before, state, history


def test_at_init_the_merged_model_is_the_base_exactly():
    params = FNS.init(jax.random.PRNGKey(0))
    assert set(params) == {"base", "lora"}
    plain = model_fns(TINY)
    jax.tree.map(np.testing.assert_array_equal, params["base"], plain.init(jax.random.PRNGKey(0)))
    merged = lora.merged(params, SETTINGS)
    for path, w in flatten_dict(params["base"]).items():
        np.testing.assert_array_equal(bits(flatten_dict(merged)[path]), bits(w), err_msg=path)
    # the factors are there (A random, B zero), one pair per decoder weight
    factors = flatten_dict(params["lora"])
    assert sorted(factors) == sorted(f"{p}/{ab}" for p in lora.LAYOUTS if p.startswith("llm/")
                                     for ab in "ab")  # fmt: skip
    assert all(float(jnp.abs(v).max()) > 0 for k, v in factors.items() if k.endswith("/a"))
    assert all(float(jnp.abs(v).max()) == 0 for k, v in factors.items() if k.endswith("/b"))
    args = model_inputs(letter_batch())
    np.testing.assert_array_equal(FNS.logits(params, *args), plain.logits(params["base"], *args))


def test_training_moves_only_the_factors_and_lowers_the_loss():
    before, state, losses = train(FNS, CFG, 12)
    after = flatten_dict(jax.tree.map(np.asarray, state["params"]["base"]))
    for path, w in flatten_dict(before["base"]).items():
        np.testing.assert_array_equal(bits(after[path]), bits(w), err_msg=path)
    b = state["params"]["lora"]["llm"]["layers"]["mlp"]["linear"]["b"]
    assert float(jnp.abs(b).max()) > 0
    assert losses[-1] < losses[0] - 1.0, losses


def test_the_optimizer_state_holds_moments_of_the_factors_only():
    state = _fresh_state(FNS, CFG, None)
    n_lora, n_base = size(state["params"]["lora"]), size(state["params"]["base"])
    n_opt = size(state["opt_state"])
    # Adam's two moments per factor, and a few counters; nothing of the base's size
    assert 2 * n_lora <= n_opt <= 2 * n_lora + 16
    assert n_base > 5 * n_lora
    base_shapes = {np.shape(x) for x in jax.tree.leaves(state["params"]["base"])}
    lora_shapes = {np.shape(x) for x in jax.tree.leaves(state["params"]["lora"])}
    opt_shapes = {np.shape(x) for x in jax.tree.leaves(state["opt_state"])} - {()}
    assert opt_shapes <= lora_shapes and not opt_shapes & (base_shapes - lora_shapes)
    # no gradient reaches the frozen base (it is behind stop_gradient)
    grads = jax.jit(jax.grad(lambda p, b: loss_fn(p, b, FNS.logits, 0.0)[0]))(
        state["params"], letter_batch()
    )
    assert all(not np.any(g) for g in jax.tree.leaves(grads["base"]))
    assert np.any(grads["lora"]["llm"]["layers"]["mlp"]["linear"]["b"])
    # full fine-tuning of the same model: moments of every weight
    full = _fresh_state(model_fns(TINY), dataclasses.replace(CFG, freeze=None), None)
    assert size(full["opt_state"]) >= 2 * n_base


def test_merge_of_known_factors_on_stacked_einsum_weights():
    params = pg.init_params(TINY, jax.random.PRNGKey(0))
    settings = LoraSettings(rank=2, alpha=6.0)  # scale 3
    t = TINY.text
    L, K, D, H, N = t.depth, t.num_kv_heads, t.width, t.head_dim, t.num_heads
    kv_a = np.arange(L * 2 * D * 2, dtype=np.float32).reshape(L, 2, D, 2) / 100
    kv_b = np.arange(L * 2 * 2 * K * H, dtype=np.float32).reshape(L, 2, 2, K, H) / 100
    q_a = np.ones((L, D, 2), np.float32)
    q_b = np.arange(L * 2 * N * H, dtype=np.float32).reshape(L, 2, N, H) / 10
    factors = {"llm": {"layers": {"attn": {"kv_einsum": {"w": {"a": kv_a, "b": kv_b}},
                                           "q_einsum": {"w": {"a": q_a, "b": q_b}}}}}}  # fmt: skip
    out = lora.merge(params, factors, settings)["llm"]["layers"]["attn"]
    kv = np.asarray(params["llm"]["layers"]["attn"]["kv_einsum"]["w"])  # [L, 2, K, D, H]
    # v (c=1) of layer 1, kv head 1, input 5, output 3, by hand
    want = kv[1, 1, 1, 5, 3] + 3 * (kv_a[1, 1, 5, 0] * kv_b[1, 1, 0, 1, 3]
                                    + kv_a[1, 1, 5, 1] * kv_b[1, 1, 1, 1, 3])  # fmt: skip
    assert float(out["kv_einsum"]["w"][1, 1, 1, 5, 3]) == pytest.approx(want, rel=1e-6)
    q = np.asarray(params["llm"]["layers"]["attn"]["q_einsum"]["w"])  # [L, N, D, H]
    want = q[0, 2, 7, 4] + 3 * (q_b[0, 0, 2, 4] + q_b[0, 1, 2, 4])
    assert float(out["q_einsum"]["w"][0, 2, 7, 4]) == pytest.approx(want, rel=1e-6)
    # weights without factors pass through untouched
    untouched = params["llm"]["layers"]["attn"]["attn_vec_einsum"]["w"]
    np.testing.assert_array_equal(out["attn_vec_einsum"]["w"], untouched)


# Input axes of each adaptable weight, read off the einsums of gemma.py and vit.py (not from
# lora.LAYOUTS, which this checks): "NBTD,NDH->BTNH" reads D of q_einsum [L, N, D, H], etc.
ENC = "img/Transformer/encoderblock/"
READS = {  # path: (stacked axes, input axes) as positions in the weight's shape
    "llm/layers/attn/q_einsum/w": ((0,), (2,)),
    "llm/layers/attn/kv_einsum/w": ((0, 1), (3,)),
    "llm/layers/attn/attn_vec_einsum/w": ((0,), (1, 2)),
    "llm/layers/mlp/gating_einsum": ((0, 1), (2,)),
    "llm/layers/mlp/linear": ((0,), (1,)),
    ENC + "MultiHeadDotProductAttention_0/query/kernel": ((0,), (1,)),
    ENC + "MultiHeadDotProductAttention_0/key/kernel": ((0,), (1,)),
    ENC + "MultiHeadDotProductAttention_0/value/kernel": ((0,), (1,)),
    ENC + "MultiHeadDotProductAttention_0/out/kernel": ((0,), (1, 2)),
    ENC + "MlpBlock_0/Dense_0/kernel": ((0,), (1,)),
    ENC + "MlpBlock_0/Dense_1/kernel": ((0,), (1,)),
    "img/embedding/kernel": ((), (0, 1, 2)),
    "img/head/kernel": ((), (0,)),
    "llm/embedder/input_embedding": ((), (0,)),
}


def test_every_update_is_low_rank_from_its_input_axes_to_its_output_axes():
    """A @ B as a map from the axes the model contracts to the others has rank r, per layer: a
    factorisation over other axes (e.g. heads read as inputs) would give a higher rank."""
    params = pg.init_params(TINY, jax.random.PRNGKey(0))
    paths = lora.adapted_paths(params, LoraSettings(rank=2, targets="."))
    assert sorted(paths) == sorted(READS)  # every weight matrix, no norm, bias or position table
    flat = flatten_dict(params)
    for i, path in enumerate(paths):
        shape = tuple(flat[path].shape)
        a_shape, b_shape = lora.factor_shapes(path, shape, 2)
        a = jax.random.normal(jax.random.PRNGKey(i), a_shape)
        b = jax.random.normal(jax.random.PRNGKey(100 + i), b_shape)
        d = np.asarray(lora.delta(path, shape, a, b))
        assert d.shape == shape
        kept, inputs = READS[path]
        outputs = [j for j in range(len(shape)) if j not in kept + inputs]
        n_kept, n_in = (int(np.prod([shape[j] for j in axes])) for axes in (kept, inputs))
        d = d.transpose([*kept, *inputs, *outputs]).reshape(n_kept, n_in, -1)
        ranks = np.linalg.matrix_rank(d)
        assert (ranks == 2).all(), (path, ranks)


def test_a_lora_run_exports_a_plain_model_with_the_factors_merged(tmp_path):
    from omrgemma import train_state
    from omrgemma.checkpoint import load_model_dir
    from omrgemma.train_run import DataSettings, export_model

    ctc = CtcSettings(weight=0.5, upsample=4, bottleneck=8)
    fns = lora.wrap_model_fns(model_fns(TINY, ctc), SETTINGS)
    before, state, _ = train(fns, CFG, 3)
    params = jax.tree.map(np.asarray, state["params"])
    # the CTC head (a `train_full` prefix) trains in full beside the factors; the rest is frozen
    assert not np.array_equal(params["base"]["ctc"]["proj"], before["base"]["ctc"]["proj"])
    np.testing.assert_array_equal(params["base"]["llm"]["layers"]["mlp"]["linear"],
                                  before["base"]["llm"]["layers"]["mlp"]["linear"])  # fmt: skip
    run = {
        "model": TINY.to_dict(),
        "data": dataclasses.asdict(DataSettings()),
        "train": dataclasses.asdict(TrainConfig()),
        "ctc": dataclasses.asdict(ctc),
        "lora": dataclasses.asdict(SETTINGS),
    }
    (tmp_path / "run.json").write_text(json.dumps(run))
    (tmp_path / "tokenizer.model").write_bytes(b"tokenizer")
    train_state.save_checkpoint(tmp_path, {"params": params}, {"step": 3, "data_position": 24})
    out = export_model(tmp_path, tmp_path / "model", card="card")

    from safetensors import safe_open

    with safe_open(str(out / "model.safetensors"), "np") as f:
        names = list(f.keys())
    assert not [n for n in names if "lora" in n or "base" in n or "ctc" in n]
    loaded = load_model_dir(out, param_dtype="float32")
    want = jax.tree.map(
        lambda x: np.asarray(x.astype(jnp.bfloat16), np.float32),
        lora.merge({k: v for k, v in params["base"].items() if k != "ctc"}, params["lora"],
                   SETTINGS),
    )  # fmt: skip
    for path, w in flatten_dict(want).items():
        np.testing.assert_array_equal(flatten_dict(loaded.params)[path], w, err_msg=path)
    linear = loaded.params["llm"]["layers"]["mlp"]["linear"]
    assert not np.array_equal(linear, params["base"]["llm"]["layers"]["mlp"]["linear"])
    args = model_inputs(letter_batch())
    np.testing.assert_allclose(
        pg.prefix_lm_logits(loaded.params, loaded.config, *args[:3], args[3].astype(bool)),
        pg.prefix_lm_logits(want, TINY, *args[:3], args[3].astype(bool)),
        rtol=1e-6, atol=1e-6,
    )  # fmt: skip


def test_official_3b_factor_count_matches_the_shapes():
    """Through `jax.eval_shape` only: rank-16 factors of the 3B decoder, counted by hand."""
    abstract = pg.abstract_params(PALIGEMMA2_3B_224)
    settings = LoraSettings(rank=16)
    factors = jax.eval_shape(lambda: lora.init_lora(abstract, settings, jax.random.PRNGKey(0)))
    t, r = PALIGEMMA2_3B_224.text, 16
    L, D, N, K, H, F = t.depth, t.width, t.num_heads, t.num_kv_heads, t.head_dim, t.mlp_dim
    by_hand = (
        L * r * ((D + N * H) + 2 * (D + K * H) + (N * H + D) + 2 * (D + F) + (F + D))
    )  # q, k and v, attn_vec, gate and up, linear
    assert size(factors) == by_hand


def test_settings_round_trip_through_run_json_and_freeze_the_base():
    from omrgemma.train_run import lora_settings

    settings = LoraSettings(rank=8, alpha=4.0, train_full=("ctc/", "llm/embedder/"))
    run = json.loads(json.dumps({"lora": dataclasses.asdict(settings)}))
    assert lora_settings(run) == settings and not lora_settings({}).enabled
    import re

    frozen = re.compile(settings.frozen_pattern)
    assert frozen.search("base/llm/layers/mlp/linear") and frozen.search("base/img/head/kernel")
    assert not frozen.search("base/ctc/proj") and not frozen.search("base/llm/embedder/x")
    assert not frozen.search("lora/llm/layers/mlp/linear/a")


def test_the_cli_offers_lora_and_needs_a_checkpoint_for_it(tmp_path, capsys):
    from omrgemma.cli import main

    def run(args):
        try:
            main(args)
        except SystemExit as exit:
            return exit.code, capsys.readouterr()
        return 0, capsys.readouterr()

    code, out = run(["train", "--help"])
    assert code == 0 and "--lora-rank" in out.out and "--lora-alpha" in out.out
    code, out = run(["train", str(tmp_path / "new"), "--lora-rank", "16"])
    assert code == 2 and "--init-from" in out.err and "Traceback" not in out.err
    code, out = run(["train", str(tmp_path / "new"), "--lora-rank", "16", "--init-from",
                     str(tmp_path), "--freeze", "^img/"])  # fmt: skip
    assert code == 2 and "--freeze" in out.err
    assert not (tmp_path / "new").exists()


# The 4-bar F-major melody of docs/machine.md (as in test_kern_examples.py), without bar numbers.
MELODY = "**kern\n*clefG2\n*k[b-]\n*M3/4\n=\n4f\n8gL\n8aJ\n4b-\n=\n4.cc\n8b-\n4a\n=\n2.f\n==\n*-\n"


@pytest.mark.slow
def test_a_lora_run_trains_resumes_and_exports_through_run_training(tmp_path):
    """The wiring of train_run: init from a model directory, freeze, resume, merge on export."""
    from omrgemma import train_state
    from omrgemma.checkpoint import load_model_dir, save_model_dir
    from omrgemma.kerntok import KernTokenizerSpec, train_kern_tokenizer
    from omrgemma.train_run import DataSettings, export_model, run_training

    tokenizer = train_kern_tokenizer([MELODY] * 20, KernTokenizerSpec(vocab_size=120))
    base = pg.init_params(TINY, jax.random.PRNGKey(3))
    save_model_dir(tmp_path / "base", base, TINY, tokenizer=tokenizer)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    data = DataSettings(shard_size=8, heldout_examples=2, text_buckets=(128,))
    data = dataclasses.replace(data, examples=dataclasses.replace(data.examples, image_size=28))
    run = {
        "model": TINY.to_dict(),
        "data": dataclasses.asdict(data),
        "train": dataclasses.asdict(TrainConfig(batch_size=4, warmup_steps=1, log_every=1)),
        "init_from": str(tmp_path / "base"),
        "vocab": "keep",
        "lora": dataclasses.asdict(SETTINGS),
    }
    (run_dir / "run.json").write_text(json.dumps(run))
    (run_dir / "tokenizer.model").write_bytes(tokenizer)
    for name in ("pool.jsonl", "heldout.jsonl"):
        (run_dir / name).write_text(json.dumps(MELODY) + "\n")
    run_training(run_dir, resume=False, steps=2, workers=0)
    run_training(run_dir, resume=True, steps=1, workers=0)
    latest = train_state.latest_checkpoint(run_dir)
    assert train_state.read_meta(latest)["step"] == 3
    from safetensors.numpy import load_file

    state = load_file(str(latest / train_state.STATE_FILE))
    for path, w in flatten_dict(base).items():  # the checkpoint's weights, bit for bit
        np.testing.assert_array_equal(bits(state[f"params/base/{path}"]), bits(w), err_msg=path)
    b = state["params/lora/llm/layers/mlp/linear/b"]
    moments = [k for k in state if k.startswith("opt_state") and "/mu/" in k]
    assert moments and all("/mu/lora/" in k for k in moments)  # none of the base
    assert np.any(b)
    out = export_model(run_dir, tmp_path / "model", card="card")
    loaded = load_model_dir(out, param_dtype="float32")
    lora_tree = {k[len("params/lora/") :]: v for k, v in state.items() if "params/lora/" in k}
    from omrgemma.nn.layers import unflatten_dict

    want = lora.merge(base, unflatten_dict(lora_tree), SETTINGS)
    for path, w in flatten_dict(want).items():
        w = np.asarray(jnp.asarray(w).astype(jnp.bfloat16), np.float32)
        np.testing.assert_array_equal(flatten_dict(loaded.params)[path], w, err_msg=path)

"""Training: AdamW with warm-up + cosine, loss on the suffix, data-parallel/FSDP, exact resume.

Read top to bottom: `TrainConfig` (hyper-parameters), `make_optimizer`, `loss_fn`, the jitted
`make_train_step`, sharding over a `("data",)` mesh, and `train` (the loop: batches in, JSONL logs
and atomic checkpoints out). The loop knows nothing about music or tokenization: a model is two
functions (`ModelFns`) and data is anything with `next_batch()` and `position`.

Batches are dicts of host arrays:
    images      uint8[B, H, W]     grey, 255 = white (turned into f32[B, H, W, 3] in [-1, 1] here)
    tokens      int32[B, T+1]      see `omrgemma.data.sequence.layout`
    mask_ar, mask_loss, input_mask int32[B, T+1]
The model sees `tokens[:, :-1]` and predicts `tokens[:, 1:]`, weighted by `mask_loss[:, 1:]`.
"""

from __future__ import annotations

import json
import math
import re
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import jax
import jax.numpy as jnp
import numpy as np
import optax

from omrgemma import train_state
from omrgemma.train_state import path_key

LogitsFn = Callable[..., jax.Array]  # (params, images, tokens, mask_ar, input_mask) -> f32[B,T,V]


@dataclass(frozen=True, kw_only=True)
class ModelFns:
    """A model as two pure functions, so the loop works for any architecture (and test stand-ins).

    init(rng) -> params; logits(params, images f32[B,H,W,3], tokens int32[B,T], mask_ar int32[B,T],
    input_mask int32[B,T]) -> f32[B,T,V] over the text positions.
    """

    init: Callable[[jax.Array], Any]
    logits: LogitsFn
    # Training only: (params, images, tokens, mask_ar, input_mask, targets, weights) ->
    # (logits, weighted auxiliary loss), e.g. `omrgemma.ctc` on the image tokens.
    logits_aux: Callable[..., tuple[jax.Array, jax.Array]] | None = None


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Hyper-parameters of one run (saved in every checkpoint's meta.json)."""

    batch_size: int = 16
    total_steps: int = 100_000  # the cosine reaches its end here
    learning_rate: float = 1e-3
    warmup_steps: int = 100
    end_lr_fraction: float = 0.05
    b1: float = 0.9
    b2: float = 0.98
    weight_decay: float = 0.01  # decoupled, on matrices only
    clip_norm: float = 1.0
    label_smoothing: float = 0.1
    # Share of the suffix's input tokens replaced by <unk> in teacher forcing (targets unchanged):
    # a decoder that cannot trust its context must look at the image to predict the next token.
    input_dropout: float = 0.0
    freeze: str | None = None  # regex over parameter paths, e.g. "^img/"
    seed: int = 0
    log_every: int = 10
    checkpoint_every_s: float = 300.0
    eval_every_s: float = 900.0
    keep_checkpoints: int = 2
    fsdp: bool = False  # shard parameters and optimizer state over the mesh too


class BatchSource(Protocol):
    """What the loop needs from data: batches in a fixed order and a resumable position."""

    position: int

    def next_batch(self) -> dict[str, np.ndarray]: ...


# ---------------------------------------------------------------------------------------------
# Optimizer


def trainable_labels(params: Any, freeze: str | None) -> Any:
    """'frozen' for every parameter whose path matches `freeze`, else 'train'."""
    pattern = re.compile(freeze) if freeze else None

    def label(path, _leaf):
        return "frozen" if pattern and pattern.search(path_key(path)) else "train"

    return jax.tree_util.tree_map_with_path(label, params)


def make_optimizer(cfg: TrainConfig, params: Any) -> optax.GradientTransformation:
    """clip → AdamW (decay on ≥2-D params) under warm-up + cosine; frozen params get no update.

    Wrapped in `optax.apply_if_finite`: a step whose gradients hold NaN/Inf leaves params and
    moments untouched and is counted (`notfinite_count`), instead of poisoning the run.
    """
    schedule = optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=cfg.learning_rate,
        warmup_steps=cfg.warmup_steps,
        decay_steps=max(cfg.total_steps, cfg.warmup_steps + 1),
        end_value=cfg.learning_rate * cfg.end_lr_fraction,
    )
    decay_mask = jax.tree.map(lambda p: p.ndim >= 2, params)
    tx = optax.chain(
        optax.clip_by_global_norm(cfg.clip_norm),
        optax.adamw(schedule, b1=cfg.b1, b2=cfg.b2, weight_decay=cfg.weight_decay, mask=decay_mask),
    )
    if cfg.freeze:
        tx = optax.multi_transform(
            {"train": tx, "frozen": optax.set_to_zero()}, trainable_labels(params, cfg.freeze)
        )
    return optax.apply_if_finite(tx, max_consecutive_errors=1_000_000)


def learning_rate_at(cfg: TrainConfig, step: int) -> float:
    """The scheduled learning rate at `step` (for logs)."""
    if step < cfg.warmup_steps:
        return cfg.learning_rate * step / max(cfg.warmup_steps, 1)
    span = max(cfg.total_steps - cfg.warmup_steps, 1)
    progress = min((step - cfg.warmup_steps) / span, 1.0)
    end = cfg.learning_rate * cfg.end_lr_fraction
    return end + (cfg.learning_rate - end) * 0.5 * (1 + math.cos(math.pi * progress))


# ---------------------------------------------------------------------------------------------
# Loss


def images_to_model(images: jax.Array) -> jax.Array:
    """uint8[B, H, W] grey (or already f32[B, H, W, 3]) -> f32[B, H, W, 3] in [-1, 1]."""
    if images.dtype == jnp.uint8:
        x = images.astype(jnp.float32) / 127.5 - 1.0
        return jnp.repeat(x[..., None], 3, axis=-1)
    return images.astype(jnp.float32)


def token_losses(
    logits: jax.Array, targets: jax.Array, label_smoothing: float
) -> tuple[jax.Array, jax.Array]:
    """(smoothed loss, plain NLL), both f32[B, T], from logits f32[B, T, V] and targets int32[B, T].

    Smoothing puts 1-ε on the target and spreads ε uniformly over the vocabulary.
    """
    logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    nll = -jnp.take_along_axis(logp, targets[..., None], axis=-1)[..., 0]
    smoothed = (1.0 - label_smoothing) * nll - label_smoothing * logp.mean(axis=-1)
    return smoothed, nll


def loss_fn(
    params: Any,
    batch: dict[str, jax.Array],
    logits_fn: LogitsFn,
    label_smoothing: float,
    aux_fn: Callable[..., tuple[jax.Array, jax.Array]] | None = None,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Mean over examples of the per-example mean suffix loss (as big_vision), plus metrics.

    With `aux_fn` (`ModelFns.logits_aux`) its auxiliary loss is added and logged as `aux`; an
    `aux_fn` that returns no logits trains on its auxiliary loss alone.
    """
    tokens = batch["tokens"]
    targets = tokens[:, 1:]
    weights = batch["mask_loss"][:, 1:].astype(jnp.float32)
    inputs = (
        params,
        images_to_model(batch["images"]),
        batch.get("inputs", tokens)[:, :-1],  # `drop_inputs` may have corrupted the inputs
        batch["mask_ar"][:, :-1],
        batch["input_mask"][:, :-1],
    )
    if aux_fn is None:
        logits, aux = logits_fn(*inputs), None
    else:
        logits, aux = aux_fn(*inputs, targets, weights)
    if logits is None:  # an encoder-only run (`CtcSettings.encoder_only`): the aux loss alone
        return aux, {"loss": aux, "aux": aux}
    smoothed, nll = token_losses(logits, targets, label_smoothing)
    per_example = (smoothed * weights).sum(-1) / jnp.maximum(weights.sum(-1), 1.0)
    loss = per_example.mean()
    n_tokens = jnp.maximum(weights.sum(), 1.0)
    correct = (logits.argmax(-1) == targets).astype(jnp.float32)
    metrics = {
        "loss": loss,
        "nll": (nll * weights).sum() / n_tokens,
        "accuracy": (correct * weights).sum() / n_tokens,
    }
    if aux is not None:
        metrics["aux"] = aux
        loss = loss + aux
    return loss, metrics


# ---------------------------------------------------------------------------------------------
# State, step and sharding


UNK_ID = 3  # <unk> in Gemma's tokenizer and ours (omrgemma.kerntok)


def drop_inputs(batch: dict[str, jax.Array], rate: float, rng: jax.Array) -> dict[str, jax.Array]:
    """`batch` with a `rate` share of the suffix's *input* tokens set to <unk>.

    Position t of `tokens` is the input that predicts t+1; only positions inside the suffix
    (mask_loss 1, i.e. the text the model writes) are corrupted, never <bos>, the prompt or the
    separator. `loss_fn` reads targets from the original `tokens[:, 1:]`, passed as `targets`.
    """
    tokens = batch["tokens"]
    inside = batch["mask_loss"].astype(bool)
    drop = jax.random.bernoulli(rng, rate, tokens.shape) & inside
    return dict(batch, inputs=jnp.where(drop, UNK_ID, tokens))


def make_train_step(model: ModelFns, tx: optax.GradientTransformation, cfg: TrainConfig):
    """A pure `(state, batch) -> (state, metrics)`; jit it (or use `compile_train_step`)."""

    def step(state, batch):
        if cfg.input_dropout > 0:
            batch = drop_inputs(batch, cfg.input_dropout, jax.random.fold_in(state["rng"], 7))
        grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
        (_, metrics), grads = grad_fn(
            state["params"], batch, model.logits, cfg.label_smoothing, model.logits_aux
        )
        updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
        params = optax.apply_updates(state["params"], updates)
        metrics["grad_norm"] = optax.global_norm(grads)
        metrics["skipped"] = opt_state.total_notfinite
        new_state = {
            "params": params,
            "opt_state": opt_state,
            "step": state["step"] + 1,
            "rng": jax.random.fold_in(state["rng"], state["step"]),
        }
        return new_state, metrics

    return step


def make_mesh(n_devices: int | None = None) -> jax.sharding.Mesh:
    """A 1-D `("data",)` mesh over the first `n_devices` devices (all by default)."""
    devices = jax.devices()[: n_devices or len(jax.devices())]
    return jax.sharding.Mesh(np.asarray(devices), ("data",))


def leaf_spec(shape: tuple[int, ...], n: int, fsdp: bool) -> jax.sharding.PartitionSpec:
    """Replicated, or (FSDP) split along the largest axis that the mesh size divides."""
    P = jax.sharding.PartitionSpec
    if not fsdp or n == 1 or not shape:
        return P()
    for axis in sorted(range(len(shape)), key=lambda a: -shape[a]):
        if shape[axis] % n == 0 and shape[axis] >= n:
            spec = [None] * len(shape)
            spec[axis] = "data"
            return P(*spec)
    return P()


def state_shardings(state_shapes: Any, mesh: jax.sharding.Mesh, fsdp: bool) -> Any:
    """A NamedSharding per leaf of the state (optimizer moments follow their params by shape)."""
    n = mesh.devices.size
    return jax.tree.map(
        lambda x: jax.sharding.NamedSharding(mesh, leaf_spec(tuple(x.shape), n, fsdp)), state_shapes
    )


def batch_sharding(mesh: jax.sharding.Mesh) -> jax.sharding.NamedSharding:
    """Examples split over the `data` axis."""
    return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))


def compile_train_step(step_fn, state: Any, mesh: jax.sharding.Mesh, fsdp: bool):
    """(jitted step, state placed on the mesh); the old state buffers are donated each step."""
    shardings = state_shardings(jax.eval_shape(lambda s: s, state), mesh, fsdp)
    replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    jitted = jax.jit(
        step_fn,
        in_shardings=(shardings, batch_sharding(mesh)),
        out_shardings=(shardings, replicated),
        donate_argnums=(0,),
    )
    return jitted, jax.device_put(state, shardings)


# ---------------------------------------------------------------------------------------------
# Evaluation


def make_eval_nll(model: ModelFns):
    """jitted `(params, batch) -> (nll, nll with images rolled by one across the batch)`.

    The gap between the two says how much the model reads the image; a model that only learned
    the language of kern has no gap (docs/cpu-learning-curve.md).
    """

    def nll(params, batch):
        _, true = loss_fn(params, batch, model.logits, 0.0)
        shuffled = dict(batch, images=jnp.roll(batch["images"], 1, axis=0))
        _, fake = loss_fn(params, shuffled, model.logits, 0.0)
        return true["nll"], fake["nll"], true["accuracy"], fake["accuracy"]

    return jax.jit(nll)


@dataclass(kw_only=True)
class Evaluator:
    """Periodic held-out checks: NLL with true vs shuffled images, and optionally SER.

    `batches` are held-out batches (same layout as training); `transcribe(params, batch) ->
    list[str]` and `references` (kern strings) enable SER through `omrgemma.metrics`.
    """

    model: ModelFns
    batches: list[dict[str, np.ndarray]]
    transcribe: Callable[[Any, dict[str, np.ndarray]], list[str]] | None = None
    references: list[str] = field(default_factory=list)
    _nll: Any = None

    def __call__(self, params: Any) -> dict[str, float]:
        if self._nll is None:
            self._nll = make_eval_nll(self.model)
        rows = [[float(v) for v in self._nll(params, b)] for b in self.batches]
        true, fake, acc, fake_acc = np.mean(np.asarray(rows), axis=0)
        out = {
            "heldout_nll": float(true),
            "shuffled_nll": float(fake),
            "image_gap": float(fake - true),
            "heldout_accuracy": float(acc),
            "shuffled_accuracy": float(fake_acc),
        }
        if self.transcribe is not None and self.references:
            from omrgemma.metrics import error_rates

            hyps = [h for b in self.batches for h in self.transcribe(params, b)]
            rates = error_rates(hyps[: len(self.references)], self.references)
            out.update(heldout_ser=rates.ser, heldout_cer=rates.cer, heldout_ler=rates.ler)
            out["examples"] = [
                {"ref": r, "hyp": h} for r, h in zip(self.references[:3], hyps[:3], strict=False)
            ]
        return out


# ---------------------------------------------------------------------------------------------
# The loop


class _StopFlag:
    """Set by SIGTERM/SIGINT so the loop can write a checkpoint before it exits."""

    def __init__(self) -> None:
        self.stop = False

    def __call__(self, signum, frame) -> None:
        self.stop = True


def _progress_line(step: int, total: int, m: dict[str, float], eta_s: float) -> str:
    eta = time.strftime("%H:%M:%S", time.gmtime(max(eta_s, 0)))
    return (
        f"step {step}/{total}  loss {m['loss']:.3f}"
        + (f"  nll {m['nll']:.3f}  acc {m['accuracy']:.1%}" if "nll" in m else "")
        + (f"  aux {m['aux']:.3f}" if "aux" in m else "")
        + f"  lr {m['lr']:.2e}  {m['samples_per_s']:.2f} samples/s  data wait {m['wait_s']:.2f}s"
        f"  ETA {eta}"
    )


def train(
    *,
    run_dir: Path,
    model: ModelFns,
    make_data: Callable[[int], BatchSource],
    cfg: TrainConfig,
    resume: bool = False,
    max_steps: int | None = None,
    max_minutes: float | None = None,
    evaluator: Callable[[Any], dict[str, float]] | None = None,
    mesh: jax.sharding.Mesh | None = None,
    extra_meta: dict | None = None,
    init_params: Any = None,
    console=None,
) -> dict[str, Any]:
    """Train until `cfg.total_steps`, `max_steps` more steps, `max_minutes`, or SIGTERM.

    `make_data(position)` builds the batch source starting at sample `position`, so a resumed
    run sees exactly the batches the uninterrupted run would have. `init_params` (e.g. from an
    official checkpoint) replaces the random initialisation. Returns the final state (on the host
    devices) and writes `run_dir/log.jsonl` and checkpoints. The state is checkpointed on exit.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    mesh = mesh or make_mesh(1)
    template = jax.eval_shape(lambda: _fresh_state(model, cfg, init_params))
    tx = make_optimizer(cfg, template["params"])
    latest = train_state.latest_checkpoint(run_dir) if resume else None
    if latest is not None:
        state, meta = train_state.load_checkpoint(latest, template)
        position, trained_s = int(meta["data_position"]), float(meta.get("trained_s", 0.0))
    else:
        state, position, trained_s = _fresh_state(model, cfg, init_params), 0, 0.0
    step_fn, state = compile_train_step(make_train_step(model, tx, cfg), state, mesh, cfg.fsdp)
    data = make_data(position)
    put_batch = batch_sharding(mesh)

    start_step = int(state["step"])
    last_step = (
        cfg.total_steps if max_steps is None else min(cfg.total_steps, start_step + max_steps)
    )
    deadline = time.monotonic() + 60 * max_minutes if max_minutes else math.inf
    stop = _StopFlag()
    old_handlers = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    log = open(run_dir / "log.jsonl", "a")
    meta_base = {"train_config": asdict(cfg), **(extra_meta or {})}
    window: list[dict[str, float]] = []
    t_ckpt = t_eval = t_window = time.monotonic()

    def checkpoint(step: int) -> None:
        meta = dict(meta_base, step=step, data_position=data.position, trained_s=trained_s)
        train_state.save_checkpoint(run_dir, state, meta, keep=cfg.keep_checkpoints)

    def write_log(record: dict) -> None:
        log.write(json.dumps(record) + "\n")
        log.flush()

    try:
        step = start_step
        while step < last_step and time.monotonic() < deadline and not stop.stop:
            t0 = time.monotonic()
            batch = data.next_batch()
            wait = time.monotonic() - t0
            state, metrics = step_fn(state, jax.device_put(batch, put_batch))
            step += 1
            window.append({"wait_s": wait, "samples": len(batch["tokens"]), **metrics})
            if step % cfg.log_every == 0 or step == last_step:
                now = time.monotonic()
                elapsed, t_window = now - t_window, now
                trained_s += elapsed
                record = _summarise(window, elapsed, step, cfg)
                window = []
                write_log(record)
                eta = (last_step - step) / max(record["steps_per_s"], 1e-9)
                _echo(console, _progress_line(step, last_step, record, eta))
            if evaluator is not None and time.monotonic() - t_eval >= cfg.eval_every_s:
                result = {"step": step, "time": time.time()}
                try:
                    result.update(evaluator(state["params"]))
                except Exception as error:  # a broken evaluation must not end a long run
                    result["eval_error"] = f"{type(error).__name__}: {error}"
                write_log(result)
                shown = {k: v for k, v in result.items() if k != "examples"}
                _echo(console, "eval " + json.dumps(shown))
                t_eval = time.monotonic()
            if time.monotonic() - t_ckpt >= cfg.checkpoint_every_s:
                checkpoint(step)
                t_ckpt = time.monotonic()
        trained_s += time.monotonic() - t_window if window else 0.0
        checkpoint(step)
    finally:
        log.close()
        for sig, handler in old_handlers.items():
            signal.signal(sig, handler)
        close = getattr(data, "close", None)
        if close:
            close()
    return state


def _fresh_state(model: ModelFns, cfg: TrainConfig, init_params: Any) -> dict[str, Any]:
    if init_params is None:
        init_rng, run_rng = jax.random.split(jax.random.PRNGKey(cfg.seed))
        params = model.init(init_rng)
    else:
        params, run_rng = init_params, jax.random.PRNGKey(cfg.seed)
    tx = make_optimizer(cfg, params)
    return {
        "params": params,
        "opt_state": tx.init(params),
        "step": jnp.zeros((), jnp.int32),
        "rng": run_rng,
    }


def _summarise(window: list[dict], elapsed: float, step: int, cfg: TrainConfig) -> dict:
    """Means over the last `log_every` steps (this is where the device is waited for)."""
    host = [{k: float(v) for k, v in m.items()} for m in window]
    samples = sum(m["samples"] for m in host)
    record = {
        "step": step,
        "time": time.time(),
        "lr": learning_rate_at(cfg, step),
        "samples_per_s": samples / max(elapsed, 1e-9),
        "steps_per_s": len(host) / max(elapsed, 1e-9),
        "skipped_total": host[-1]["skipped"],
    }
    for key in ("loss", "nll", "accuracy", "grad_norm", "wait_s", "aux"):
        if key in host[0]:
            record[key] = float(np.mean([m[key] for m in host]))
    return record


def _echo(console, line: str) -> None:
    if console is not None:
        console.print(line, highlight=False)
    else:
        print(line, file=sys.stderr, flush=True)

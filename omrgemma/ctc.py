"""An auxiliary CTC loss on the image tokens: a training-only push to read the image.

A decoder trained from scratch first learns kern as a language and predicts notes from context,
not from pixels (docs/cpu-learning-curve.md: the same loss with shuffled images). CTC gives the
encoder a direct signal: the target tokens must be readable, left to right, from the image tokens
alone, column by column, so the image tokens have to carry the symbols before the decoder can
ignore them. It is the hybrid CTC/attention recipe of speech and handwriting recognition; at
inference nothing changes (the head is dropped on export, the model stays PaliGemma).

    image tokens [B, rows*cols, D]  -> per token D -> `bottleneck` (linear)
    -> a column's rows concatenated [B, cols, rows*bottleneck]
    -> linear to `upsample` frames of V classes each -> [B, cols*upsample, V]
    -> optax.ctc_loss against the suffix tokens (blank = the pad id, never a target)

`upsample` frames per patch column let a column emit several tokens (a 16 px column of a
single staff often holds a note and its beam or accidental, and kern pieces are short).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import optax

from omrgemma.config import PaliGemmaConfig


@dataclass(frozen=True, kw_only=True)
class CtcSettings:
    """weight 0 turns the head off; the other two size it (see the module docstring)."""

    weight: float = 0.0
    upsample: int = 4
    bottleneck: int = 64
    blank: int = 0  # the pad id of both tokenizers
    # Target ids CTC does not ask for: pieces with no ink of their own (see `invisible_ids`).
    skip: tuple[int, ...] = ()
    # Train the encoder on CTC alone: the decoder is neither run nor updated. A ViT learns to
    # spell a staff several times faster per CPU-second this way (benchmarks/encoder_probe.py);
    # a later run with --init-from then trains the whole model on the taught encoder.
    encoder_only: bool = False

    @property
    def enabled(self) -> bool:
        return self.weight > 0


# Layout and bookkeeping pieces: line and field separators, the spine header and terminator,
# spine manipulators, staff assignments, and the meter symbol (verovio shows either it or the
# numeric meter, so the numeric `*M` piece stands for the printed meter).
INVISIBLE = re.compile(r"[\t\n]|\*\*.*|\*-|\*[v^x+]|\*staff\d*|\*met\(.*")


def invisible_ids(pieces: Sequence[str], eos: int) -> tuple[int, ...]:
    """Ids of the pieces that `INVISIBLE` matches, and <eos>: what CTC must not read."""
    return tuple(sorted({i for i, p in enumerate(pieces) if INVISIBLE.fullmatch(p)} | {eos}))


def init_head(
    config: PaliGemmaConfig, settings: CtcSettings, rng: jax.Array, *, silent: bool = False
) -> dict:
    """{"proj": f32[D, b], "out": f32[rows*b, upsample*V], "bias": f32[upsample*V]} (fan-in).

    `silent`: "out" starts at zero, so every frame is uniform and no gradient reaches the
    encoder until the head has learned something: for a head put on a trained encoder, whose
    first random gradients would otherwise disturb what it knows (as big_vision zero-inits the
    projector of a pretrained encoder).
    """
    rows, _ = config.grid_shape
    width, b = config.text.width, settings.bottleneck
    k1, k2 = jax.random.split(rng)
    out_dim = settings.upsample * config.vocab_size
    out = jax.random.normal(k2, (rows * b, out_dim), jnp.float32) / (rows * b) ** 0.5
    return {
        "proj": jax.random.normal(k1, (width, b), jnp.float32) / width**0.5,
        "out": jnp.zeros_like(out) if silent else out,
        "bias": jnp.zeros((out_dim,), jnp.float32),
    }


def frame_logits(
    head: dict, config: PaliGemmaConfig, settings: CtcSettings, image_tokens: jax.Array
) -> jax.Array:
    """image tokens f32[B, rows*cols, D] (row-major, as the ViT emits them) -> f32[B, F, V]."""
    rows, cols = config.grid_shape
    batch = image_tokens.shape[0]
    z = image_tokens.astype(jnp.float32) @ head["proj"]  # [B, rows*cols, b]
    z = z.reshape(batch, rows, cols, -1).transpose(0, 2, 1, 3).reshape(batch, cols, -1)
    out = z @ head["out"] + head["bias"]  # [B, cols, upsample*V]
    return out.reshape(batch, cols * settings.upsample, config.vocab_size)


def left_align(targets: jax.Array, weights: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The weighted positions of each row moved to its start, in order: (labels, paddings).

    The suffix sits after the prompt in `targets`; CTC wants labels from position 0 with the
    padding at the end. A stable sort on "not weighted" does exactly that.
    """
    order = jnp.argsort(1 - (weights > 0).astype(jnp.int32), axis=1, stable=True)
    labels = jnp.take_along_axis(targets, order, axis=1)
    paddings = 1.0 - jnp.take_along_axis((weights > 0).astype(jnp.float32), order, axis=1)
    return labels, paddings


def ctc_loss(
    logits: jax.Array, targets: jax.Array, weights: jax.Array, settings: CtcSettings
) -> jax.Array:
    """Mean over examples of the CTC loss per target token (so it is on the scale of the NLL).

    logits f32[B, F, V]; targets int32[B, T] and weights f32[B, T] as in `train.loss_fn` (the
    suffix and <eos>); ids in `settings.skip` are left out of the CTC target. Targets longer
    than F frames cannot be aligned: their loss is dropped (optax returns a huge value for them)
    instead of blowing up the gradient.
    """
    if settings.skip:
        weights = weights * ~jnp.isin(targets, jnp.asarray(settings.skip, targets.dtype))
    labels, paddings = left_align(targets, weights)
    n_frames = logits.shape[1]
    logit_paddings = jnp.zeros(logits.shape[:2], jnp.float32)
    if labels.shape[1] > n_frames:
        labels, paddings = labels[:, :n_frames], paddings[:, :n_frames]
    per_example = optax.ctc_loss(logits, logit_paddings, labels, paddings, blank_id=settings.blank)
    lengths = (weights > 0).sum(-1)
    ok = (lengths <= n_frames) & jnp.isfinite(per_example) & (per_example < 1e5)
    per_token = jnp.where(ok, per_example / jnp.maximum(lengths, 1), 0.0)
    return per_token.sum() / jnp.maximum(ok.sum(), 1)


def best_paths(frames: jax.Array, blank: int) -> list[list[int]]:
    """Greedy CTC decoding of f32[B, F, V] frame logits: repeats merged, blanks removed."""
    import numpy as np

    paths = []
    for best in np.asarray(frames.argmax(-1)):
        keep = (best != blank) & np.r_[True, best[1:] != best[:-1]]
        paths.append([int(t) for t in best[keep]])
    return paths


def target_pieces(targets, weights, settings: CtcSettings) -> list[list[int]]:
    """What CTC is asked to read in each row: the weighted targets not in `settings.skip`."""
    import numpy as np

    skip = set(settings.skip)
    return [
        [int(t) for t, w in zip(row, wrow, strict=True) if w > 0 and int(t) not in skip]
        for row, wrow in zip(np.asarray(targets), np.asarray(weights), strict=True)
    ]

"""LoRA: fine-tune a large checkpoint through low-rank updates of its weight matrices.

An adapted weight W is read as a map from its input axes to its output axes, with any stacked
axes (layers L, the k/v or gate/up halves C) kept apart, and trained as

    W' = W + (alpha / rank) * A @ B      A f32[..., in, r] random, B f32[..., r, out] zero

so training starts exactly at the base model. During training the parameters are

    {"base": the model's own tree (frozen, except `train_full` prefixes), "lora": {path: {a, b}}}

and `wrap_model_fns` computes the logits on `merged` parameters; `frozen_pattern` is the
`TrainConfig.freeze` that keeps the optimizer (and its Adam moments) off the base. Export merges
the factors in, so a fine-tuned model directory is a plain PaliGemma and inference needs none of
this.

The merge materialises the adapted weights (and, in the backward pass, their gradient) once per
step: the saving is in the optimizer state and the base's gradients, not in activations.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp

from omrgemma.nn.layers import Params, flatten_dict, unflatten_dict

# The Gemma decoder's attention and MLP weights (the usual LoRA targets); not the embedding,
# the norms or the image encoder.
DECODER = r"^llm/layers/(attn/(q_einsum|kv_einsum|attn_vec_einsum)/w|mlp/(gating_einsum|linear))$"

# The weight matrices LoRA can adapt: per weight, (its axes in the letters of nn/layers.py, the
# axes kept apart, the input axes); the remaining axes are the outputs. Shapes as in gemma.py and
# vit.py. Any other 2-D weight outside the stacked layers is read as [in, out]; the rest (norms,
# biases, which are 2-D or 3-D once stacked, and the position table) are never adapted.
_ENC = "img/Transformer/encoderblock/"
STACKED = ("llm/layers/", _ENC)
LAYOUTS: dict[str, tuple[str, str, str]] = {
    "llm/layers/attn/q_einsum/w": ("LNDH", "L", "D"),
    "llm/layers/attn/kv_einsum/w": ("LCKDH", "LC", "D"),  # k and v adapted apart, as in PEFT
    "llm/layers/attn/attn_vec_einsum/w": ("LNHD", "L", "NH"),
    "llm/layers/mlp/gating_einsum": ("LCDF", "LC", "D"),  # gate and up adapted apart
    "llm/layers/mlp/linear": ("LFD", "L", "F"),
    _ENC + "MultiHeadDotProductAttention_0/query/kernel": ("LWNH", "L", "W"),
    _ENC + "MultiHeadDotProductAttention_0/key/kernel": ("LWNH", "L", "W"),
    _ENC + "MultiHeadDotProductAttention_0/value/kernel": ("LWNH", "L", "W"),
    _ENC + "MultiHeadDotProductAttention_0/out/kernel": ("LNHW", "L", "NH"),
    _ENC + "MlpBlock_0/Dense_0/kernel": ("LWM", "L", "W"),
    _ENC + "MlpBlock_0/Dense_1/kernel": ("LMW", "L", "M"),
    "img/embedding/kernel": ("PQCW", "", "PQC"),  # patch rows, columns, colour channels
}


def layout(path: str, shape: tuple[int, ...]) -> tuple[str, str, str] | None:
    """(all axes, kept axes, input axes) of an adaptable weight, None for any other leaf."""
    if path in LAYOUTS:
        axes = LAYOUTS[path]
        if len(axes[0]) != len(shape):
            raise ValueError(f"{path} has shape {shape}, LoRA expects axes {axes[0]}")
        return axes
    if len(shape) == 2 and not path.startswith(STACKED):
        return ("IO", "", "I")
    return None


@dataclass(frozen=True, kw_only=True)
class LoraSettings:
    """rank 0 turns LoRA off (full fine-tuning).

    targets: regex over parameter paths; the matching weight matrices are adapted (norm scales,
    biases and the position table are skipped, see `layout`). train_full: path prefixes trained
    in full instead of frozen, e.g. a fresh head or a replaced embedding ("llm/embedder/")."""

    rank: int = 0
    alpha: float = 16.0
    targets: str = DECODER
    train_full: tuple[str, ...] = ("ctc/",)

    def __post_init__(self) -> None:
        if self.rank < 0 or self.alpha <= 0:
            raise ValueError(f"LoRA needs rank >= 0 and alpha > 0, got {self.rank}, {self.alpha}")

    @property
    def enabled(self) -> bool:
        return self.rank > 0

    @property
    def scale(self) -> float:
        return self.alpha / self.rank

    @property
    def frozen_pattern(self) -> str:
        """The `TrainConfig.freeze` of a LoRA run: every base leaf but the `train_full` ones."""
        if not self.train_full:
            return "^base/"
        return "^base/(?!" + "|".join(re.escape(p) for p in self.train_full) + ")"

    def trains_fully(self, path: str) -> bool:
        return path.startswith(self.train_full)

    @classmethod
    def from_dict(cls, raw: dict) -> LoraSettings:
        """From `dataclasses.asdict` after a JSON round trip (lists back to tuples)."""
        raw = dict(raw)
        if "train_full" in raw:
            raw["train_full"] = tuple(raw["train_full"])
        return cls(**raw)


def _axes(path: str, shape: tuple[int, ...]) -> tuple[str, str, str, str]:
    """(all, kept, input, output) axis letters of an adaptable weight."""
    found = layout(path, shape)
    if found is None:
        raise ValueError(f"{path} of shape {shape} is not a weight matrix LoRA can adapt")
    axes, kept, inputs = found
    return axes, kept, inputs, "".join(x for x in axes if x not in kept + inputs)


def factor_shapes(path: str, shape: tuple[int, ...], rank: int) -> tuple[tuple, tuple]:
    """Shapes of A [kept..., in..., r] and B [kept..., r, out...] for a weight of `shape`."""
    axes, kept, inputs, outputs = _axes(path, shape)
    size = dict(zip(axes, shape, strict=True))
    a = tuple(size[x] for x in kept + inputs) + (rank,)
    b = tuple(size[x] for x in kept) + (rank,) + tuple(size[x] for x in outputs)
    return a, b


def delta(path: str, shape: tuple[int, ...], a: jax.Array, b: jax.Array) -> jax.Array:
    """A @ B laid out as the weight: f32[shape]."""
    axes, kept, inputs, outputs = _axes(path, shape)
    spec = f"{kept}{inputs}r,{kept}r{outputs}->{axes}"
    return jnp.einsum(spec, a.astype(jnp.float32), b.astype(jnp.float32))


def adapted_paths(params: Params, settings: LoraSettings) -> list[str]:
    """The paths of `params` that `settings.targets` adapts (weight matrices, see `layout`)."""
    pattern = re.compile(settings.targets)
    return [
        path
        for path, w in flatten_dict(params).items()
        if pattern.search(path)
        and layout(path, tuple(w.shape)) is not None
        and not settings.trains_fully(path)
    ]


def init_lora(params: Params, settings: LoraSettings, rng: jax.Array) -> Params:
    """Factors for every adapted weight: {path...: {"a": f32 normal / sqrt(fan-in), "b": 0}}.

    `params` may hold `jax.ShapeDtypeStruct`s (only shapes are read).
    """
    paths = adapted_paths(params, settings)
    if not paths:
        raise ValueError(f"LoRA targets {settings.targets!r} match no weight matrix")
    flat = flatten_dict(params)
    factors = {}
    for i, path in enumerate(paths):
        shape = tuple(flat[path].shape)
        a_shape, b_shape = factor_shapes(path, shape, settings.rank)
        kept = _axes(path, shape)[1]
        fan_in = math.prod(a_shape[len(kept) : -1])  # A's input axes
        noise = jax.random.normal(jax.random.fold_in(rng, i), a_shape, jnp.float32)
        factors[f"{path}/a"] = noise * fan_in**-0.5
        factors[f"{path}/b"] = jnp.zeros(b_shape, jnp.float32)
    return unflatten_dict(factors)


def merge(params: Params, lora: Params, settings: LoraSettings) -> Params:
    """`params` with W + scale * A @ B for every weight that has factors in `lora` (pure, jit-able).

    The sum is taken in float32 and cast back to W's dtype, so zero B gives W exactly.
    """
    factors = flatten_dict(lora)
    weights = flatten_dict(params)
    stray = sorted({k.rsplit("/", 1)[0] for k in factors} - weights.keys())
    if stray:
        raise ValueError(f"LoRA factors for weights the model does not have: {stray[:5]}")
    flat = {}
    for path, w in weights.items():
        if f"{path}/a" in factors:
            d = delta(path, tuple(w.shape), factors[f"{path}/a"], factors[f"{path}/b"])
            w = (jnp.asarray(w, jnp.float32) + settings.scale * d).astype(w.dtype)
        flat[path] = w
    return unflatten_dict(flat)


def with_lora(params: Params, settings: LoraSettings, rng: jax.Array) -> Params:
    """Training parameters of a LoRA run from model parameters: {"base": params, "lora": ...}."""
    return {"base": params, "lora": init_lora(params, settings, rng)}


def merged(train_params: Params, settings: LoraSettings) -> Params:
    """Model parameters from {"base", "lora"}. The frozen base leaves are behind stop_gradient, so
    no gradient is computed for them (nor for an encoder nothing trainable depends on)."""
    base = {
        path: w if settings.trains_fully(path) else jax.lax.stop_gradient(w)
        for path, w in flatten_dict(train_params["base"]).items()
    }
    return merge(unflatten_dict(base), train_params["lora"], settings)


def on_merged(fn: Callable[..., Any], settings: LoraSettings) -> Callable[..., Any]:
    """`fn(model params, ...)` as a function of training parameters {"base", "lora"}."""
    return lambda params, *args: fn(merged(params, settings), *args)


def wrap_model_fns(fns: Any, settings: LoraSettings) -> Any:
    """`ModelFns` over {"base", "lora"} parameters: init adds fresh factors, logits merge first.

    Train it with `TrainConfig(freeze=settings.frozen_pattern)`.
    """

    def init(rng: jax.Array) -> Params:
        return with_lora(fns.init(rng), settings, jax.random.fold_in(rng, 0x10EA))

    aux = None if fns.logits_aux is None else on_merged(fns.logits_aux, settings)
    return dataclasses.replace(
        fns, init=init, logits=on_merged(fns.logits, settings), logits_aux=aux
    )

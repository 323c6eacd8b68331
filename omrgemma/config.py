"""PaliGemma 2 model configurations: frozen dataclasses, the official presets and JSON round trips.

Numbers come from docs/paligemma2.md (§1.2 SigLIP So400m/14, §1.3 Gemma 2, §3.2 the transformers
`config.json`). Where big_vision and transformers disagree the config has an explicit switch
(`sliding_window`, `attn_logits_softcap`, `final_logits_softcap`); the presets follow big_vision.

Variations are made with `dataclasses.replace`, e.g. the transfer setting::

    replace(PALIGEMMA2_3B_896, final_logits_softcap=None)
"""

from __future__ import annotations

import dataclasses
import json
import operator
from dataclasses import dataclass, replace
from typing import Any, Literal

DType = Literal["float32", "bfloat16"]
Size = int | tuple[int, int]  # one side (square) or (height, width), in pixels

CONFIG_FORMAT = "omrgemma.paligemma/1"
PALIGEMMA_VOCAB = 257_152  # 256,000 Gemma pieces + 1,024 <loc> + 128 <seg> (doc §2.3)


def _pair(size: Size) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else size


def normalize_size(size: Any, what: str = "size") -> Size:
    """An int side or an (height, width) pair (a JSON list too) -> int when square, else a tuple.

    One spelling per shape keeps configs equal, hashable (they are jit static arguments) and their
    JSON unchanged for square models.
    """
    sides = tuple(size) if isinstance(size, (list, tuple)) else (size, size)
    if len(sides) != 2:
        raise ValueError(f"{what} must be one int or (height, width), got {size!r}")
    try:
        if any(isinstance(side, bool) for side in sides):
            raise TypeError
        h, w = (operator.index(side) for side in sides)  # ints, numpy ints; not floats
    except TypeError:
        raise ValueError(f"{what} sides must be ints, got {size!r}") from None
    if h <= 0 or w <= 0:
        raise ValueError(f"{what} sides must be positive, got {size!r}")
    return h if h == w else (h, w)


@dataclass(frozen=True, kw_only=True)
class VisionConfig:
    """A SigLIP ViT without pooling: pre-LN blocks, tanh-GELU MLP, final `encoder_norm`."""

    width: int = 1152
    depth: int = 27
    mlp_dim: int = 4304
    num_heads: int = 16
    norm_eps: float = 1e-6

    @property
    def head_dim(self) -> int:
        return self.width // self.num_heads

    def __post_init__(self) -> None:
        if self.width % self.num_heads:
            raise ValueError(
                f"vision width {self.width} is not divisible by {self.num_heads} heads"
            )


@dataclass(frozen=True, kw_only=True)
class TextConfig:
    """A Gemma 2 decoder: GQA, RoPE, pre+post RMSNorm, GeGLU, tied embedding."""

    width: int
    depth: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    mlp_dim: int
    # Queries are multiplied by query_pre_attn_scalar**-0.5: head_dim for 2B/9B, width/heads for 27B.
    query_pre_attn_scalar: float
    rope_base: float = 10_000.0
    norm_eps: float = 1e-6

    def __post_init__(self) -> None:
        if self.num_heads % self.num_kv_heads:
            raise ValueError(
                f"{self.num_heads} query heads do not group into {self.num_kv_heads} kv heads"
            )
        if self.head_dim % 2:
            raise ValueError(f"RoPE needs an even head_dim, got {self.head_dim}")


@dataclass(frozen=True, kw_only=True)
class PaliGemmaConfig:
    """Everything needed to build the model and to interpret a checkpoint.

    vocab_size: rows of the embedding table actually used (257,152 for PaliGemma; transformers
        checkpoints pad to 257,216 and the loader drops the padding rows).
    param_dtype: dtype the parameters are stored and loaded in.
    compute_dtype: dtype of activations and matmuls (attention logits and softmax are always f32).
    sliding_window: None = global attention on every layer (big_vision); an int = that window on
        layers 0, 2, 4, ... as transformers does (Gemma 2: 4096).
    attn_logits_softcap / final_logits_softcap: None switches the cap off (big_vision writes 0.0).
    image_size / patch_size: one side (square, as every official preset) or (height, width). A
        pair is stored as a tuple, and a square pair as the plain int, so square configs and their
        JSON are the same whichever way they were written. The patch grid is `grid_shape`
        (H / ph, W / pw), flattened row-major into `num_image_tokens` image tokens.
    """

    name: str = "custom"
    vision: VisionConfig
    text: TextConfig
    image_size: Size = 224
    patch_size: Size = 14
    vocab_size: int = PALIGEMMA_VOCAB
    param_dtype: DType = "float32"
    compute_dtype: DType = "float32"
    sliding_window: int | None = None
    attn_logits_softcap: float | None = 50.0
    final_logits_softcap: float | None = 30.0

    def __post_init__(self) -> None:
        for field in ("image_size", "patch_size"):
            object.__setattr__(self, field, normalize_size(getattr(self, field), field))
        (h, w), (ph, pw) = self.image_hw, self.patch_hw
        if h % ph or w % pw:
            raise ValueError(
                f"image size {h}x{w} is not a multiple of patch {ph}x{pw} on both axes"
            )
        for field in ("attn_logits_softcap", "final_logits_softcap", "sliding_window"):
            value = getattr(self, field)
            if value is not None and value <= 0:
                raise ValueError(
                    f"{field} must be positive or None (None switches it off), got {value}"
                )
        for field in ("param_dtype", "compute_dtype"):
            if getattr(self, field) not in ("float32", "bfloat16"):
                raise ValueError(f"{field} must be 'float32' or 'bfloat16'")

    @property
    def image_hw(self) -> tuple[int, int]:
        """(height, width) of the input image in pixels."""
        return _pair(self.image_size)

    @property
    def patch_hw(self) -> tuple[int, int]:
        """(height, width) of one patch in pixels."""
        return _pair(self.patch_size)

    @property
    def grid_shape(self) -> tuple[int, int]:
        """(rows, columns) of the patch grid: (H / ph, W / pw)."""
        (h, w), (ph, pw) = self.image_hw, self.patch_hw
        return h // ph, w // pw

    @property
    def grid_size(self) -> int:
        """Patches per image side of a square grid (`grid_shape` for any grid)."""
        rows, cols = self.grid_shape
        if rows != cols:
            raise ValueError(f"the patch grid is {rows}x{cols}, not square: use grid_shape")
        return rows

    @property
    def num_image_tokens(self) -> int:
        rows, cols = self.grid_shape
        return rows * cols

    # ---- our own config.json ------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {"format": CONFIG_FORMAT, **dataclasses.asdict(self)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PaliGemmaConfig:
        data = dict(data)
        fmt = data.pop("format", CONFIG_FORMAT)
        if fmt != CONFIG_FORMAT:
            raise ValueError(f"unknown config format {fmt!r}, expected {CONFIG_FORMAT!r}")
        return cls(
            **{k: v for k, v in data.items() if k not in ("vision", "text")},
            vision=VisionConfig(**data["vision"]),
            text=TextConfig(**data["text"]),
        )

    @classmethod
    def from_json(cls, text: str) -> PaliGemmaConfig:
        return cls.from_dict(json.loads(text))


# ---- presets ----------------------------------------------------------------------------------

SO400M = VisionConfig()

GEMMA2_2B = TextConfig(
    width=2304, depth=26, num_heads=8, num_kv_heads=4, head_dim=256, mlp_dim=9216,
    query_pre_attn_scalar=256,
)  # fmt: skip
GEMMA2_9B = TextConfig(
    width=3584, depth=42, num_heads=16, num_kv_heads=8, head_dim=256, mlp_dim=14336,
    query_pre_attn_scalar=256,
)  # fmt: skip
GEMMA2_27B = TextConfig(
    width=4608, depth=46, num_heads=32, num_kv_heads=16, head_dim=128, mlp_dim=36864,
    query_pre_attn_scalar=4608 // 32,
)  # fmt: skip


def _official(size: str, llm: TextConfig, res: int) -> PaliGemmaConfig:
    return PaliGemmaConfig(
        name=f"paligemma2-{size}-{res}", vision=SO400M, text=llm, image_size=res,
        param_dtype="bfloat16",
    )  # fmt: skip


PALIGEMMA2_3B_224 = _official("3b", GEMMA2_2B, 224)
PALIGEMMA2_3B_448 = _official("3b", GEMMA2_2B, 448)
PALIGEMMA2_3B_896 = _official("3b", GEMMA2_2B, 896)
PALIGEMMA2_10B_224 = _official("10b", GEMMA2_9B, 224)
PALIGEMMA2_10B_448 = _official("10b", GEMMA2_9B, 448)
PALIGEMMA2_10B_896 = _official("10b", GEMMA2_9B, 896)
PALIGEMMA2_28B_224 = _official("28b", GEMMA2_27B, 224)
PALIGEMMA2_28B_448 = _official("28b", GEMMA2_27B, 448)
PALIGEMMA2_28B_896 = _official("28b", GEMMA2_27B, 896)

OFFICIAL = (
    PALIGEMMA2_3B_224, PALIGEMMA2_3B_448, PALIGEMMA2_3B_896,
    PALIGEMMA2_10B_224, PALIGEMMA2_10B_448, PALIGEMMA2_10B_896,
    PALIGEMMA2_28B_224, PALIGEMMA2_28B_448, PALIGEMMA2_28B_896,
)  # fmt: skip

# For tests: every code path of the real model (GQA with 2 groups, 4 image tokens, soft-caps) in
# a model that runs in milliseconds on a CPU.
TINY = PaliGemmaConfig(
    name="tiny",
    vision=VisionConfig(width=32, depth=2, mlp_dim=64, num_heads=4),
    text=TextConfig(
        width=32, depth=2, num_heads=4, num_kv_heads=2, head_dim=8, mlp_dim=64,
        query_pre_attn_scalar=8,
    ),
    image_size=28,
    patch_size=14,
    vocab_size=256,
)  # fmt: skip

PRESETS: dict[str, PaliGemmaConfig] = {c.name: c for c in (*OFFICIAL, TINY)}


# ---- transformers config.json -----------------------------------------------------------------


def _hf_dtype(hf: dict[str, Any]) -> DType:
    dtype = hf.get("dtype") or hf.get("torch_dtype") or "float32"
    return "bfloat16" if dtype == "bfloat16" else "float32"


def from_hf_config(hf: dict[str, Any], *, keep_sliding_window: bool = False) -> PaliGemmaConfig:
    """Build our config from a transformers PaliGemma `config.json` (as a dict).

    The vocabulary is cut at the `<image>` token: transformers appends `<image>` and padding rows
    (257,152 -> 257,216), which the model never predicts. Transformers always sets Gemma 2's
    4096 sliding window; it is kept only with `keep_sliding_window` (big_vision trains without).
    """
    text, vision = hf["text_config"], hf["vision_config"]
    if vision.get("vision_use_head", False):
        raise ValueError("vision_use_head=True (a MAP head) is not PaliGemma")
    rope_base = text.get("rope_theta")
    if rope_base is None:
        rope_base = (text.get("rope_parameters") or {}).get("rope_theta", 10_000.0)
    hf_vocab = text["vocab_size"]
    image_token = hf.get("image_token_id", hf.get("image_token_index"))
    vocab = image_token if image_token is not None and image_token < hf_vocab else hf_vocab
    heads = text["num_attention_heads"]
    sliding = text.get("sliding_window") if keep_sliding_window else None
    return PaliGemmaConfig(
        name="from-transformers",
        vision=VisionConfig(
            width=vision["hidden_size"],
            depth=vision["num_hidden_layers"],
            mlp_dim=vision["intermediate_size"],
            num_heads=vision["num_attention_heads"],
            norm_eps=vision.get("layer_norm_eps", 1e-6),
        ),
        text=TextConfig(
            width=text["hidden_size"],
            depth=text["num_hidden_layers"],
            num_heads=heads,
            num_kv_heads=text.get("num_key_value_heads", heads),
            head_dim=text.get("head_dim") or text["hidden_size"] // heads,
            mlp_dim=text["intermediate_size"],
            query_pre_attn_scalar=text.get("query_pre_attn_scalar", text.get("head_dim")),
            rope_base=float(rope_base),
            norm_eps=text.get("rms_norm_eps", 1e-6),
        ),
        image_size=vision["image_size"],
        patch_size=vision["patch_size"],
        vocab_size=vocab,
        param_dtype=_hf_dtype(hf),
        sliding_window=sliding,
        attn_logits_softcap=text.get("attn_logit_softcapping") or None,
        final_logits_softcap=text.get("final_logit_softcapping") or None,
    )


def hf_vocab_size(config: PaliGemmaConfig) -> int:
    """Rows of the transformers embedding: ours + `<image>`, padded to a multiple of 64."""
    return -(-(config.vocab_size + 1) // 64) * 64


def to_hf_config(config: PaliGemmaConfig) -> dict[str, Any]:
    """The transformers `config.json` dict describing the same architecture (inverse of
    `from_hf_config` up to `name`; used to build reference models in tests)."""
    t, v = config.text, config.vision
    if not (isinstance(config.image_size, int) and isinstance(config.patch_size, int)):
        raise ValueError(
            f"transformers' SigLIP takes square images and patches only, got image "
            f"{config.image_size} / patch {config.patch_size}"
        )
    return {
        "model_type": "paligemma",
        "architectures": ["PaliGemmaForConditionalGeneration"],
        "image_token_index": config.vocab_size,
        "projection_dim": t.width,
        "hidden_size": t.width,
        "dtype": config.param_dtype,
        "text_config": {
            "model_type": "gemma2",
            "hidden_size": t.width,
            "num_hidden_layers": t.depth,
            "num_attention_heads": t.num_heads,
            "num_key_value_heads": t.num_kv_heads,
            "head_dim": t.head_dim,
            "intermediate_size": t.mlp_dim,
            "query_pre_attn_scalar": t.query_pre_attn_scalar,
            "rope_theta": t.rope_base,
            "rms_norm_eps": t.norm_eps,
            "hidden_activation": "gelu_pytorch_tanh",
            "vocab_size": hf_vocab_size(config),
            "sliding_window": config.sliding_window or 4096,
            "attn_logit_softcapping": config.attn_logits_softcap,
            "final_logit_softcapping": config.final_logits_softcap,
        },
        "vision_config": {
            "model_type": "siglip_vision_model",
            "hidden_size": v.width,
            "num_hidden_layers": v.depth,
            "intermediate_size": v.mlp_dim,
            "num_attention_heads": v.num_heads,
            "patch_size": config.patch_size,
            "image_size": config.image_size,
            "num_image_tokens": config.num_image_tokens,
            "projection_dim": t.width,
            "layer_norm_eps": v.norm_eps,
            "hidden_act": "gelu_pytorch_tanh",
            "vision_use_head": False,
        },
    }


__all__ = [
    "DType", "Size", "normalize_size", "VisionConfig", "TextConfig", "PaliGemmaConfig", "PRESETS", "TINY", "OFFICIAL",
    "PALIGEMMA2_3B_224", "PALIGEMMA2_3B_448", "PALIGEMMA2_3B_896",
    "PALIGEMMA2_10B_224", "PALIGEMMA2_10B_448", "PALIGEMMA2_10B_896",
    "PALIGEMMA2_28B_224", "PALIGEMMA2_28B_448", "PALIGEMMA2_28B_896",
    "from_hf_config", "to_hf_config", "hf_vocab_size", "replace",
]  # fmt: skip

"""A model directory turned into a function from system images to **kern.

    recognizer = load_recognizer("models/omrgemma-small", beam=1, batch_size=8)
    kerns = recognizer.predict([crop_a, crop_b])          # uint8[H, W] greys -> kern strings
    results = recognizer.recognize([crop_a, crop_b])      # + per-token log-probabilities

This is the only module of the pipeline that imports JAX, and it does so inside
`load_recognizer`, so commands that never run a model start fast.

A model directory is anything `omrgemma.checkpoint.load_any` reads: our own (config.json,
model.safetensors, tokenizer.model), an official PaliGemma 2 transformers directory, or a
big_vision `.npz` (with `tokenizer.model` beside it). An optional `inference.json` beside the
weights names the task prompt (`"prompt"`, default empty: the model then sees `<bos><sep>` after
the image), the decode budget (`"max_new_tokens"`) and the beam width it is read with by default
(`"beam"`, default 1: greedy; `beam=` overrides it); our `config.json` is the model's
architecture only, so these cannot live there.
A directory holding several resolutions keeps each in a subfolder named by it (`224/`, `448/`);
`resolution=` picks one. Inputs may be non-square (`image_size` (height, width) in the config, e.g.
64 x 512 for one staff): every image is fitted into that shape with its aspect kept.

`Recognizer.unit` says what one image is: "system", or "staff" for a model that reads one staff
(`"unit"` in `inference.json`, else "staff" when the input's height * 4 <= its width, as for
64 x 512). The recognizer itself always reads what it is given;
`omrgemma.pipeline.staves.system_reader` wraps a staff model so that it reads whole systems
(split into staves, joined back), which is how `transcribe` and `evaluate` use it.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from omrgemma.errors import ModelError, UsageError

if TYPE_CHECKING:
    from omrgemma.kern.problems import Problem

DEFAULT_MAX_NEW_TOKENS = 1024
MAX_BEAM = 16
INFERENCE_FILE = "inference.json"
Device = Literal["auto", "cpu", "gpu", "tpu"]
Unit = Literal["system", "staff"]
UNITS: tuple[Unit, ...] = ("system", "staff")


@dataclass(frozen=True, kw_only=True)
class SystemResult:
    """The model's answer for one system image.

    kern: the decoded text. tokens: the generated ids (EOS excluded). token_logprobs:
    f32[len(tokens)], log p of each token. pieces: the text of each token, so that
    `"".join(pieces) == kern` and each token can be traced to the line it wrote.
    finished: the model stopped with EOS (False: cut at the token budget, or `repeated`: it
    was stuck writing one short block over and over, and was stopped there with one copy kept).

    A system read staff by staff (`omrgemma.pipeline.staves`) keeps each staff's own result in
    `staves` (top to bottom); its `kern` is their join, its tokens, log-probabilities and pieces
    are theirs in turn (so its pieces join to the staves' texts, not to `kern`), and `problems`
    are the join's (`omrgemma.kern.join`: a staff padded with rests), lines of `kern`.
    """

    kern: str
    tokens: tuple[int, ...]
    token_logprobs: np.ndarray
    pieces: tuple[str, ...]
    finished: bool = True
    repeated: bool = False
    staves: tuple[SystemResult, ...] = ()
    problems: tuple[Problem, ...] = ()


@dataclass(kw_only=True)
class Recognizer:
    """A loaded model, tokenizer and decoding settings. Build it with `load_recognizer`."""

    model_dir: Path
    params: Any
    config: Any
    tokenizer: Any
    prompt_ids: tuple[int, ...]
    eos_id: int
    pad_id: int
    strategy: Any
    batch_size: int
    max_new_tokens: int
    image_size: int | tuple[int, int]  # the model input: a side, or (height, width)
    device: str
    unit: Unit = "system"  # what one input image holds
    piece_measures: int | None = None  # a staff model's longest staff: see pipeline.chunks
    timings: dict[str, float] = field(default_factory=lambda: {"model": 0.0})

    def predict(self, images: Sequence[np.ndarray]) -> list[str]:
        """uint8[H, W] greyscale system images (0 = black) -> one kern string each."""
        return [result.kern for result in self.recognize(images)]

    def recognize(
        self,
        images: Sequence[np.ndarray],
        starts: Sequence[str] | None = None,
        measures: Sequence[int | None] | None = None,
    ) -> list[SystemResult]:
        """Like `predict`, with the tokens and their log-probabilities; batches of `batch_size`.

        starts: per image, text its reading must begin with (the model writes it, then goes
        on; "" for none), e.g. a header agreed with the system's other staves.
        measures: per image, the most measures its reading may hold (None: no bound), e.g. the
        barlines counted in the image (`omrgemma.measure_budget`).
        """
        from omrgemma.decode import generate

        results: list[SystemResult] = []
        for start in range(0, len(images), self.batch_size):
            chunk = images[start : start + self.batch_size]
            forced = None
            if starts is not None:
                texts = starts[start : start + self.batch_size]
                forced = [self.tokenizer.encode(text) if text else [] for text in texts]
            mask = state = None
            counts = measures[start : start + self.batch_size] if measures is not None else ()
            if any(count is not None for count in counts):
                mask = self.measure_budget
                state = mask.rows([None if n is None else (0, n) for n in counts])
            pixels = np.stack([to_model_input(image, self.image_size) for image in chunk])
            began = time.perf_counter()
            decoded = generate(
                self.params,
                self.config,
                pixels,
                [self.prompt_ids] * len(chunk),
                max_new_tokens=self.max_new_tokens,
                eos_id=self.eos_id,
                pad_id=self.pad_id,
                strategy=self.strategy,
                forced_ids=forced,
                logit_mask=mask,
                mask_state=state,
            )
            self.timings["model"] += time.perf_counter() - began
            results += [self._result(row) for row in decoded]
        return results

    @functools.cached_property
    def measure_budget(self) -> Any:
        from omrgemma.measure_budget import MeasureBudget

        return MeasureBudget.for_tokenizer(self.tokenizer, self.eos_id)

    def _result(self, row: Any) -> SystemResult:
        pieces = token_pieces(self.tokenizer, row.tokens)
        return SystemResult(
            kern="".join(pieces),
            tokens=tuple(row.tokens),
            token_logprobs=np.asarray(row.logprobs, np.float32),
            pieces=tuple(pieces),
            finished=bool(row.stopped_on_eos),
            repeated=bool(row.stopped_on_repeat),
        )

    @property
    def settings(self) -> dict[str, Any]:
        """What changes the output, for the batch manifest's settings key."""
        return {
            "model": str(self.model_dir),
            "config": getattr(self.config, "name", None),
            "image_size": self.image_size,
            "strategy": repr(self.strategy),
            "max_new_tokens": self.max_new_tokens,
            "prompt_ids": list(self.prompt_ids),
        }


def token_pieces(tokenizer: Any, tokens: Sequence[int]) -> list[str]:
    """The text each token adds to the decoded string (pieces join to `decode(tokens)`).

    Computed from decoded prefixes rather than the vocabulary's piece strings, because
    SentencePiece writes spaces as U+2581 and byte fallbacks as `<0x..>` pieces.
    """
    pieces, previous = [], ""
    for end in range(1, len(tokens) + 1):
        text = tokenizer.decode(list(tokens[:end]))
        if not text.startswith(previous):  # a multi-token character completed: re-align
            pieces.append(text[len(_common_prefix(previous, text)) :])
        else:
            pieces.append(text[len(previous) :])
        previous = text
    if pieces and "".join(pieces) != previous:  # guarantee the join is the decoded text
        pieces[-1] += previous[len("".join(pieces)) :]
    return pieces


def _common_prefix(a: str, b: str) -> str:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return a[:n]


def to_model_input(image: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """uint8[h, w] grey (0 = black) -> f32[H, W, 3] in [-1, 1], as training fed images.

    size: a side (H = W = size) or (H, W). A crop already H x W (what
    `omrgemma.image.crops.cut_systems` cuts) is only rescaled; anything else is first fitted on
    white keeping its aspect, by the same code.
    """
    from omrgemma.image.crops import fit_to

    image = np.asarray(image)
    if image.ndim == 3:
        image = image[..., :3].mean(axis=-1).round().astype(np.uint8)
    height, width = (size, size) if isinstance(size, int) else size
    if image.shape == (height, width):
        x = image.astype(np.float32) / 127.5 - 1.0
        return np.repeat(x[..., None], 3, axis=-1)
    return fit_to(image.astype(np.uint8), size)[0]


def model_unit(
    image_size: int | tuple[int, int], declared: object = None, *, path: Path | None = None
) -> Unit:
    """What one image of a model holds: `declared` ("system" or "staff", from `inference.json`)
    when given, else "staff" for an input at least four times wider than high (64 x 512)."""
    if declared is not None:
        if declared not in UNITS:
            raise ModelError(
                f"unknown unit {declared!r} in {INFERENCE_FILE}",
                path=path,
                hint='write "unit": "system" or "unit": "staff"',
            )
        return declared  # type: ignore[return-value]
    height, width = (image_size, image_size) if isinstance(image_size, int) else image_size
    return "staff" if height * 4 <= width else "system"


def load_tokenizer(path: Path):
    """`omrgemma.tokenizer.Tokenizer` from a model's `tokenizer.model`."""
    from omrgemma.tokenizer import Tokenizer

    if not Path(path).is_file():
        raise ModelError(
            "tokenizer.model is missing",
            path=path,
            hint="a model directory holds config.json, weights and tokenizer.model",
        )
    return Tokenizer.load(path)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"unreadable config ({exc})", path=path) from None


def resolve_model_dir(model_dir: str | Path, resolution: int | None) -> Path:
    """The directory to load: `model_dir`, or its `<resolution>/` subfolder when one is asked for."""
    root = Path(model_dir)
    if not root.exists():
        raise ModelError(
            "model not found",
            path=root,
            hint="pass --model DIR with a model directory (config.json, weights, tokenizer.model)",
        )
    if resolution is None:
        return root
    candidate = root / str(resolution)
    if candidate.is_dir():
        return candidate
    size = _read_json(root / "config.json").get("image_size")  # an int, or [height, width]
    if size == resolution or (size is None and not any(p.is_dir() for p in root.iterdir())):
        return root
    have = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name.isdigit())
    if not have and size:
        have = ["x".join(map(str, size)) if isinstance(size, list) else str(size)]
    raise UsageError(
        f"the model has no {resolution}-pixel variant",
        path=root,
        hint=f"it has: {', '.join(have) or 'one resolution'}",
    )


def load_recognizer(
    model_dir: str | Path,
    *,
    device: Device = "auto",
    quantize: Literal["int8"] | None = None,
    beam: int | None = None,
    batch_size: int = 8,
    resolution: int | None = None,
    max_new_tokens: int | None = None,
) -> Recognizer:
    """Load a model directory for inference (see the module docstring)."""
    if batch_size < 1:
        raise UsageError(f"batch size must be >= 1, got {batch_size}")
    if quantize not in (None, "int8"):
        raise UsageError(f"unknown quantization {quantize!r}", hint="use int8")
    path = resolve_model_dir(model_dir, resolution)

    from omrgemma import checkpoint, decode, jaxsetup

    jaxsetup.enable_compilation_cache()
    chosen = jaxsetup.select_device(device)
    loaded = checkpoint.load_any(path)
    params = loaded.params
    if quantize == "int8":
        from omrgemma.quantize import quantize as int8

        params = int8(params)
    folder = path if path.is_dir() else path.parent
    tokenizer = load_tokenizer(loaded.tokenizer_path or folder / "tokenizer.model")
    extra = {**_read_json(folder / "config.json"), **_read_json(folder / INFERENCE_FILE)}
    prompt_ids = tuple(tokenizer.encode_prefix(extra.get("prompt", "")))
    if beam is None:
        beam = _beam_width(extra.get("beam"), folder / INFERENCE_FILE)
    strategy = decode.Greedy() if beam <= 1 else decode.BeamSearch(width=beam)
    return Recognizer(
        model_dir=path,
        params=params,
        config=loaded.config,
        tokenizer=tokenizer,
        prompt_ids=prompt_ids,
        eos_id=tokenizer.eos_id,
        pad_id=tokenizer.pad_id,
        strategy=strategy,
        batch_size=batch_size,
        max_new_tokens=max_new_tokens or int(extra.get("max_new_tokens", DEFAULT_MAX_NEW_TOKENS)),
        image_size=loaded.config.image_size,
        device=str(chosen.platform),
        unit=model_unit(loaded.config.image_size, extra.get("unit"), path=folder / INFERENCE_FILE),
        piece_measures=_piece_measures(extra.get("piece_measures"), folder / INFERENCE_FILE),
    )


def _beam_width(value: Any, path: Path) -> int:
    """`"beam"` of `inference.json`: the model's own decoding (1, greedy, when absent)."""
    if value is None:
        return 1
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_BEAM:
        raise ModelError(
            f"beam must be a whole number from 1 to {MAX_BEAM}, got {value!r}",
            path=path,
            hint='write e.g. "beam": 4, or leave it out to decode greedily',
        )
    return value


def _piece_measures(value: Any, path: Path) -> int | None:
    """`"piece_measures"` of `inference.json`: None (absent) or a positive whole number."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ModelError(
            f"piece_measures must be a whole number of measures >= 1, got {value!r}",
            path=path,
            hint='write e.g. "piece_measures": 4, or leave it out to read whole systems',
        )
    return value

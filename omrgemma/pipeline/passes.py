"""Read every image more than once, at slightly different widths, and keep the surest reading.

A small model's reading of a staff changes with small changes of the input: the same staff
stretched or squeezed by 5 % can come back with another note or another rhythm. With
`passes` > 1 each image is read at the first `passes` of `WIDTHS` (its width scaled, its
height kept) and, per image, the reading whose tokens have the highest mean log-probability is
kept (a length-independent score, as the per-measure confidence is):

    reader = with_passes(recognizer, 3)    # the recognizer itself for passes=1
    results = reader.recognize(images)     # one SystemResult per image, the surest pass

All passes of all images go to the model in one call, so they are batched together. It costs
`passes` times the decoding time. Measured with the stage-8 model on staves of training
movements (100 single staves, 80 piano staves; `benchmarks/passes.py`), SER % one pass /
three: single 22.6 / 21.2, piano 49.7 / 48.9.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from omrgemma.recognizer import SystemResult

WIDTHS = (1.0, 0.95, 1.05)
"""Width factors of the passes, in the order they are added."""

MAX_PASSES = len(WIDTHS)


@dataclass(kw_only=True)
class MultiPass:
    """A recognizer (`inner`) that reads each image `passes` times (see the module docstring).
    Everything else (unit, image_size, model_dir, timings ...) is the inner recognizer's."""

    inner: Any
    passes: int

    def __post_init__(self) -> None:
        if not 1 <= self.passes <= MAX_PASSES:
            from omrgemma.errors import UsageError

            raise UsageError(f"passes must be 1 to {MAX_PASSES}, got {self.passes}")

    def __getattr__(self, name: str) -> Any:
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    @property
    def settings(self) -> dict[str, Any]:
        return {**getattr(self.inner, "settings", {}), "passes": self.passes}

    def predict(self, images: Sequence[np.ndarray]) -> list[str]:
        return [result.kern for result in self.recognize(images)]

    def recognize(self, images: Sequence[np.ndarray]) -> list[SystemResult]:
        """Per image, the surest of its passes' results."""
        widths = WIDTHS[: self.passes]
        variants = [scaled_width(image, factor) for factor in widths for image in images]
        read = list(self.inner.recognize(variants))
        count = len(images)
        return [
            max((read[p * count + i] for p in range(len(widths))), key=mean_logprob)
            for i in range(count)
        ]


def scaled_width(image: np.ndarray, factor: float) -> np.ndarray:
    """`image` with its width times `factor` (area-averaged when shrunk), its height kept."""
    if factor == 1.0:
        return image
    import cv2

    image = np.asarray(image)
    width = max(1, round(image.shape[1] * factor))
    shrink = factor < 1.0
    return cv2.resize(image, (width, image.shape[0]),
                      interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)  # fmt: skip


def mean_logprob(result: SystemResult) -> float:
    """Mean log-probability of a result's tokens (-inf for none: an empty reading never wins
    over one that wrote something)."""
    values = np.asarray(result.token_logprobs, np.float64)
    return float(values.mean()) if values.size else float("-inf")


def with_passes(recognizer: Any, passes: int) -> Any:
    """`recognizer` reading each image `passes` times; itself for one pass."""
    return recognizer if passes == 1 else MultiPass(inner=recognizer, passes=passes)


__all__ = ["MAX_PASSES", "WIDTHS", "MultiPass", "mean_logprob", "scaled_width", "with_passes"]

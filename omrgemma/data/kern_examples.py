"""Training examples from the kern corpora: a snippet pool, engraved with varied layout, augmented.

    pool    = build_snippet_pool(train_files(...), measures=(1, 4), cuts=2, seed=0)
    maker   = KernExamples(pool=pool, options=ExampleOptions(image_size=160))
    image, target = maker(np.random.default_rng(7))   # uint8[160, 160], standalone kern

The pool holds standalone per-system kern snippets (`omrgemma.data.snippets.cut_by_measures`)
from **training movements only** (`assert_not_heldout` is called on every file). Each movement
is cut `cuts` times with different random measure counts, so the same music appears in
different system widths. The pool is built once, in the parent, and is plain strings, so every
worker and every resumed run sees the same pool. With `staves=True` the pool holds each staff
of every snippet on its own (`omrgemma.kern.staves.split_staves`), for staff-level models.

An example draws a snippet, a music font, a scale and a justified system width, engraves it with
verovio (in the calling process: the pipeline's workers are the disposable processes), maybe
degrades it like a camera photo or a 1-bit scan, and fits it into the model's input (square, or
(height, width) such as 64 x 512 for one staff) the way inference does (`omrgemma.image.crops.fit_to`: aspect kept, centred, white padding).

The target is the snippet's kern with measure numbers removed (they are not printed, and the
metrics strip them too): `**kern` header, clef/key/meter, body, `*-`, exactly what the
recognizer's output should be for that system.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from omrgemma.config import Size, normalize_size
from omrgemma.data.render import FONTS

_MEASURE_NUMBER = re.compile(r"(?<=^=)\d+[a-z]?|(?<=\t=)\d+[a-z]?", re.MULTILINE)


def strip_measure_numbers(kern: str) -> str:
    """`=12:|!` -> `=:|!` in every spine; other tokens untouched."""
    return _MEASURE_NUMBER.sub("", kern)


def build_snippet_pool(
    files: Sequence[Path],
    *,
    measures: tuple[int, int],
    cuts: int,
    seed: int,
    max_chars: int = 4000,
    heldout: bool = False,
    staves: bool = False,
) -> list[str]:
    """Snippet kern texts from `files` (training movements), `cuts` cuts per movement.

    Movements the cutter rejects are skipped (they are a small minority); snippets longer than
    `max_chars` are dropped (they would not fit the text budget anyway). Only with
    `heldout=True` (evaluation slices) may `files` include held-out movements. `staves=True`
    gives every staff of each snippet as a snippet of its own, top staff first (a snippet whose
    fields cannot be assigned to staves is skipped: a few hundredths of a per cent of the piano
    snippets, from spine errors the cutter carried over).
    """
    from omrgemma.data.snippets import CutError, cut_by_measures
    from omrgemma.data.split import assert_not_heldout
    from omrgemma.kern.files import read_kern

    if not heldout:
        assert_not_heldout(files)
    pool: list[str] = []
    for index, path in enumerate(sorted(files)):
        try:
            text = read_kern(path)
        except Exception:  # unreadable file: skip it, the pool is large
            continue
        for cut in range(cuts):
            rng = np.random.default_rng((seed, index, cut))
            try:
                snippets = cut_by_measures(text, rng, measures=measures)
            except CutError:
                break
            kept = [strip_measure_numbers(s.kern) for s in snippets if s.measures >= 1]
            pool += _each_staff(kept) if staves else kept
    return [s for s in pool if len(s) <= max_chars]


def _each_staff(systems: list[str]) -> list[str]:
    from omrgemma.kern.staves import split_staves

    staves: list[str] = []
    for system in systems:
        try:
            staves += split_staves(system)
        except ValueError:  # field-count or manipulator errors: no staff can be cut out
            continue
    return staves


@dataclass(frozen=True, kw_only=True)
class ExampleOptions:
    """How examples are engraved and degraded. image_size: the model input, a side or (H, W)."""

    image_size: Size = 160
    scales: tuple[int, int] = (35, 70)  # verovio scale percentage, drawn uniformly
    fonts: tuple[str, ...] = FONTS
    justify_probability: float = 0.15  # stretch the system to a wider page width
    camera_probability: float = 0.15
    scan_probability: float = 0.15
    # fingerings, dynamics, neighbour-staff fragments (`omrgemma.data.clutter`); staves only
    clutter_probability: float = 0.0

    def __post_init__(self) -> None:
        # run.json stores a pair as a JSON list; a square pair is the plain int, as in the config.
        object.__setattr__(self, "image_size", normalize_size(self.image_size, "image_size"))


def fit_image(image: np.ndarray, size: Size) -> np.ndarray:
    """uint8[h, w] -> uint8[H, W] (size = H = W, or (H, W)): aspect kept, centred on white.

    The same geometry and filters as inference (`omrgemma.image.crops.fit_to(..., fit="pad")`:
    INTER_AREA when shrinking, INTER_LINEAR when enlarging), before the [-1, 1] mapping, which
    the training step does on the device.
    """
    import cv2

    out_h, out_w = (size, size) if isinstance(size, int) else size
    h, w = image.shape
    scale = min(out_h / h, out_w / w)
    nw, nh = max(1, min(out_w, round(w * scale))), max(1, min(out_h, round(h * scale)))
    shrink = nw < w or nh < h
    resized = cv2.resize(
        image, (nw, nh), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    )
    out = np.full((out_h, out_w), 255, np.uint8)
    left, top = (out_w - nw) // 2, (out_h - nh) // 2
    out[top : top + nh, left : left + nw] = resized
    return out


fit_square = fit_image  # the name from when every input was square


def trim_white(image: np.ndarray, margin: int = 4) -> np.ndarray:
    """Cut white borders (keeping `margin` px), so the music fills the model input."""
    ink = np.flatnonzero((image < 200).any(axis=1))
    cols = np.flatnonzero((image < 200).any(axis=0))
    if ink.size == 0 or cols.size == 0:
        return image
    top, bottom = max(ink[0] - margin, 0), min(ink[-1] + margin + 1, image.shape[0])
    left, right = max(cols[0] - margin, 0), min(cols[-1] + margin + 1, image.shape[1])
    return image[top:bottom, left:right]


@dataclass(frozen=True, kw_only=True)
class KernExamples:
    """Picklable example maker over a snippet pool (see the module docstring)."""

    pool: tuple[str, ...]
    options: ExampleOptions = ExampleOptions()

    def __call__(self, rng: np.random.Generator) -> tuple[np.ndarray, str] | None:
        from omrgemma.data.augment import augment_camera, augment_scan
        from omrgemma.data.clutter import add_clutter
        from omrgemma.data.render import render_system
        from omrgemma.errors import ConversionError

        opts = self.options
        kern = self.pool[int(rng.integers(len(self.pool)))]
        scale = int(rng.integers(opts.scales[0], opts.scales[1] + 1))
        font = opts.fonts[int(rng.integers(len(opts.fonts)))]
        try:
            image = render_system(kern, scale=scale, font=font)
            if rng.random() < opts.justify_probability:
                # verovio page units are 1/10 mm at scale 100: widen the natural width by 10-60 %
                natural = image.shape[1] * 100 // scale
                width = int(natural * rng.uniform(1.1, 1.6))
                image = render_system(kern, scale=scale, font=font, page_width=width)
        except ConversionError:
            return None
        image = trim_white(image)
        if opts.clutter_probability and rng.random() < opts.clutter_probability:
            image = add_clutter(image, rng)
        draw = rng.random()
        if draw < opts.camera_probability:
            image = augment_camera(image, rng)
        elif draw < opts.camera_probability + opts.scan_probability:
            image = augment_scan(image, rng)
        return fit_image(image, opts.image_size), kern

"""Printed-edition clutter around one rendered staff: what a staff cut from a real page carries
that its kern does not encode, so a staff-level model learns to read past it.

    image = add_clutter(render, np.random.default_rng(seed))   # uint8[H, W] -> uint8[H', W']

A staff that `omrgemma.pipeline.staves.split_staves` cuts from a scanned piano system holds
more than its notes (see the real-scans set, e.g. Beethoven's sonata 1, movement 2):
- fingering digits (bold serif 1-5) over and under the noteheads;
- dynamics and expression words in bold italic (p, sf, cresc., dolce, m.d.);
- the neighbouring staff's beams, stems and slurs at the top or bottom edge, where the cut runs
  halfway across the gap between the staves;
- the system's brace and its first barline at the left edge.

The kern label stays as it was: none of these are notes. Every random choice comes from the
`Generator` given, so an example's clutter is fixed by its seed, like `omrgemma.data.augment`.
The staff's lines are found in the render itself (rows dark across most of the width); a render
where five lines are not found gets no clutter.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

WHITE = 255
WORDS = ("p", "pp", "f", "ff", "sf", "fp", "mf", "cresc.", "dim.", "dolce", "m.d.", "m.s.", "ten.")
# Bold serif faces close to the engraved digits of 19th-century editions; Pillow's own font
# stands in where none of them is installed.
_FONT_DIRS = ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/dejavu")
_DIGIT_FONT = "DejaVuSerif-Bold.ttf"
_WORD_FONT = "DejaVuSerif-BoldItalic.ttf"
_LINE_SHARE = 0.6  # a staff line is dark in this share of the columns


def staff_lines(image: np.ndarray) -> list[int]:
    """Rows (centres) of the long horizontal lines of a rendered staff, top to bottom."""
    dark = (image < 200).mean(axis=1) >= _LINE_SHARE  # thin lines render grey
    rows = np.flatnonzero(dark)
    if rows.size == 0:
        return []
    groups = np.split(rows, np.flatnonzero(np.diff(rows) > 1) + 1)
    return [int(g.mean() + 0.5) for g in groups]  # half up, so a shift moves every line alike


def add_clutter(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """uint8[H, W] one rendered staff (0 black) -> uint8[H', W'] with margins and clutter added.

    H' >= H and W' >= W: white margins of 2-4 staff spaces above and below (what a page cut
    keeps) hold the marks; an image without five staff lines comes back unchanged.
    """
    lines = staff_lines(image)
    if len(lines) != 5:
        return image
    space = (lines[-1] - lines[0]) / 4
    if space < 3:
        return image
    top_pad, bottom_pad = (int(rng.uniform(2.0, 4.0) * space) for _ in range(2))
    left_pad = int(rng.uniform(0.5, 2.0) * space) if rng.random() < 0.3 else 0
    canvas = cv2.copyMakeBorder(
        image, top_pad, bottom_pad, left_pad, 0, cv2.BORDER_CONSTANT, value=WHITE
    )
    top, bottom = lines[0] + top_pad, lines[-1] + top_pad
    if left_pad:
        _system_start(canvas, rng, left_pad, space)
    for _ in range(int(rng.integers(0, 9))):
        _fingering(canvas, rng, top, bottom, space, left_pad)
    if rng.random() < 0.4:
        _word(canvas, rng, top, bottom, space, left_pad)
    if rng.random() < 0.4:
        _neighbour(canvas, rng, space, at_top=bool(rng.random() < 0.5))
    return canvas


def _fingering(canvas, rng, top: int, bottom: int, space: float, left: int) -> None:
    height = rng.uniform(1.1, 1.7) * space
    x = int(
        rng.uniform(left + 5 * space, max(left + 5 * space + 1, canvas.shape[1] - space))
    )  # past clef and key
    above = rng.random() < 0.65
    # a digit sits just outside the staff or, over a high (low) note, further out
    offset = rng.uniform(0.3, 2.0) * space
    y = top - offset - height if above else bottom + offset
    digits = "".join(str(int(d)) for d in rng.integers(1, 6, size=int(rng.choice([1, 1, 1, 2]))))
    _text(canvas, digits, _DIGIT_FONT, x, int(y), height, vertical=bool(len(digits) > 1))


def _word(canvas, rng, top: int, bottom: int, space: float, left: int) -> None:
    word = WORDS[int(rng.integers(len(WORDS)))]
    height = rng.uniform(1.4, 2.2) * space
    x = int(rng.uniform(left + space, max(left + space + 1, canvas.shape[1] - 4 * space)))
    below = rng.random() < 0.75
    y = bottom + rng.uniform(1.0, 2.0) * space if below else top - rng.uniform(1.5, 2.5) * space
    _text(canvas, word, _WORD_FONT, x, int(y - (0 if below else height)), height)


def _neighbour(canvas, rng, space: float, *, at_top: bool) -> None:
    """Beamed stems (and perhaps a slur) of the next staff, running off the top or bottom edge."""
    h, w = canvas.shape
    thickness = max(2, round(0.45 * space))
    x = rng.uniform(0, w * 0.6)
    for _ in range(int(rng.integers(1, 4))):
        stems = int(rng.integers(2, 5))
        gap = rng.uniform(1.5, 3.5) * space
        length = gap * (stems - 1)
        if x + length >= w:
            break
        edge_gap = rng.uniform(0.3, 1.2) * space
        y0 = edge_gap if at_top else h - 1 - edge_gap
        slant = rng.uniform(-0.8, 0.8) * space
        xs = x + gap * np.arange(stems)
        ys = y0 + slant * (xs - x) / max(length, 1)
        for bx, by in zip(xs, ys, strict=True):  # stems from the beam to the edge
            end = 0 if at_top else h - 1
            cv2.line(canvas, (int(bx), int(by)), (int(bx), end), 0, max(1, thickness // 3))
        for k in range(int(rng.integers(1, 3))):  # one or two beams
            shift = k * 0.8 * space * (1 if at_top else -1)
            points = np.array(
                [[xs[0], ys[0] + shift], [xs[-1], ys[-1] + shift],
                 [xs[-1], ys[-1] + shift + thickness], [xs[0], ys[0] + shift + thickness]],
                np.int32,
            )  # fmt: skip
            cv2.fillPoly(canvas, [points], 0)
        x += length + rng.uniform(1.0, 4.0) * space
    if rng.random() < 0.5:
        centre_y = 0 if at_top else h
        axes = (int(rng.uniform(0.2, 0.5) * w), int(rng.uniform(1.0, 2.5) * space))
        cx = int(rng.uniform(0.2, 0.8) * w)
        start, end = (0, 180) if at_top else (180, 360)
        cv2.ellipse(canvas, (cx, centre_y), axes, 0, start, end, 0, max(1, round(0.2 * space)))


def _system_start(canvas, rng, left: int, space: float) -> None:
    """The system's first barline through the whole height, and a brace stroke left of it."""
    h = canvas.shape[0]
    x = left - 1
    cv2.line(canvas, (x, 0), (x, h - 1), 0, max(1, round(0.15 * space)))
    if rng.random() < 0.6 and left > 3:
        axes = (max(1, left // 3), h)
        cv2.ellipse(canvas, (left - 2, h // 2), axes, 0, 90, 270, 0, max(1, round(0.3 * space)))


def _text(canvas, text: str, font_file: str, x: int, y: int, height: float, *,
          vertical: bool = False) -> None:  # fmt: skip
    """Draw black `text` with its top-left near (x, y), `height` px tall, clipped to the canvas."""
    from PIL import Image, ImageDraw

    size = max(6, int(round(height * 1.35)))  # a digit's cap height is ~0.73 of the font size
    font = _font(font_file, size)
    lines = list(text) if vertical else [text]
    layer = Image.new("L", (canvas.shape[1], canvas.shape[0]), 0)
    draw = ImageDraw.Draw(layer)
    for i, line in enumerate(lines):
        draw.text((x, y + i * height * 1.1), line, fill=255, font=font)
    ink = np.asarray(layer)
    np.minimum(canvas, 255 - ink, out=canvas)


@lru_cache(maxsize=64)
def _font(name: str, size: int):
    from PIL import ImageFont

    for folder in _FONT_DIRS:
        path = Path(folder) / name
        if path.is_file():
            return ImageFont.truetype(str(path), size)
    return ImageFont.load_default(size)

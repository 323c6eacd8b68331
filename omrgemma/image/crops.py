"""Model inputs from a page layout: system crops resized for PaliGemma (or our small model).

Geometry is kept with every crop (`Crop.box`, `scale`, `offset`) so a preview can map model
input pixels back to the page: page_xy = box[:2] + (input_xy - offset) / scale, in the deskewed
page frame of `PageLayout.transform` (for a system whose staves slant, `System` staves' `slope`,
y is further sheared by slope * (x - W / 2)).

Resizing: `cv2.INTER_AREA` when shrinking (an exact box-filter antialias, as Pillow's
`resize(BILINEAR, reducing_gap=None)` that big_vision uses does with its support-scaled filter)
and `cv2.INTER_LINEAR` when enlarging. Values are mapped to [-1, 1] as big_vision does:
x / 127.5 - 1, grey replicated to three channels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from omrgemma.image.layout import Box, PageLayout

Fit = Literal["pad", "stretch"]
Target = int | tuple[int, int]
PALIGEMMA_SIZES = (224, 448, 896)


@dataclass(frozen=True, kw_only=True)
class Crop:
    """One model input and where it came from.

    image: float32[H, W, 3] in [-1, 1]. page_index: page in its file (0-based). system_index:
    system on the page (0-based). box: (x0, y0, x1, y1) of the cut, deskewed page pixels.
    scale: input pixels per page pixel. offset: (x, y) of the cut's top-left in the input
    (white padding before it). tile_index/n_tiles: position among the windows of a tiled system.
    """

    image: np.ndarray
    page_index: int
    system_index: int
    box: Box
    scale: float
    offset: tuple[float, float]
    tile_index: int = 0
    n_tiles: int = 1


def cut_region(gray: np.ndarray, layout: PageLayout, box: Box, *, slope: float = 0.0) -> np.ndarray:
    """uint8[H, W] input page -> uint8[h, w] region `box` of its deskewed frame (white outside).

    slope: straighten staff lines that still slant in the deskewed frame (a page that is not
    flat, see `Staff.slope`) by shearing them level about the page's middle column, so they
    lie at their `line_ys` all along the crop.
    """
    x0, y0, x1, y1 = (round(v) for v in box)
    width, height = max(1, x1 - x0), max(1, y1 - y0)
    if layout.angle == 0.0 and slope == 0.0:
        region = np.full((height, width), 255, np.uint8)
        sx0, sy0 = max(0, x0), max(0, y0)
        sx1, sy1 = min(gray.shape[1], x1), min(gray.shape[0], y1)
        if sx1 > sx0 and sy1 > sy0:
            region[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = gray[sy0:sy1, sx0:sx1]
        return region
    # Warp only the pixels of this box: page transform, then the shear, then a shift to the box.
    middle = layout.shape[1] / 2
    shear = np.array([[1.0, 0.0, 0.0], [-slope, 1.0, slope * middle], [0.0, 0.0, 1.0]])
    matrix = (shear @ np.vstack([layout.transform, [0.0, 0.0, 1.0]]))[:2]
    matrix[:, 2] -= (x0, y0)
    return cv2.warpAffine(gray, matrix, (width, height), flags=cv2.INTER_LINEAR, borderValue=255)


def system_slope(layout: PageLayout, system_index: int) -> float:
    """Mean residual slant of a system's staves (0 for a flat page)."""
    staves = layout.systems[system_index].staves
    return float(np.mean([staff.slope for staff in staves]))


def fit_to(
    gray: np.ndarray, target: Target, *, fit: Fit = "pad"
) -> tuple[np.ndarray, float, tuple[float, float]]:
    """uint8[h, w] -> (float32[H, W, 3] in [-1, 1], scale, (offset_x, offset_y)).

    target: a side (square) or (H, W). fit "pad": keep the aspect ratio, centre on white.
    fit "stretch": resize to the target ignoring aspect (scale is then the horizontal one).
    """
    out_h, out_w = (target, target) if isinstance(target, int) else target
    height, width = gray.shape
    if fit == "stretch":
        resized = _resize(gray, out_w, out_h)
        return _normalise(resized), out_w / width, (0.0, 0.0)
    scale = min(out_h / height, out_w / width)
    new_w = max(1, min(out_w, round(width * scale)))
    new_h = max(1, min(out_h, round(height * scale)))
    canvas = np.full((out_h, out_w), 255, np.uint8)
    left, top = (out_w - new_w) // 2, (out_h - new_h) // 2
    canvas[top : top + new_h, left : left + new_w] = _resize(gray, new_w, new_h)
    return _normalise(canvas), scale, (float(left), float(top))


def cut_systems(
    gray: np.ndarray,
    layout: PageLayout,
    *,
    target: Target = 448,
    fit: Fit = "pad",
    page_index: int = 0,
) -> list[Crop]:
    """Every system of a page as a model input, top to bottom."""
    crops = []
    for index, system in enumerate(layout.systems):
        region = cut_region(gray, layout, system.box, slope=system_slope(layout, index))
        image, scale, offset = fit_to(region, target, fit=fit)
        crops.append(
            Crop(
                image=image,
                page_index=page_index,
                system_index=index,
                box=system.box,
                scale=scale,
                offset=offset,
            )
        )
    return crops


def tile_system(
    gray: np.ndarray,
    layout: PageLayout,
    system_index: int,
    *,
    target: tuple[int, int],
    overlap: float = 0.15,
    page_index: int = 0,
) -> list[Crop]:
    """A long system as overlapping windows of `target` (H, W), cut at barlines where possible.

    The system is scaled so its height fills H; each window spans at most W input pixels, ends
    at the last barline that fits (or at W when no barline does), and the next one starts at the
    last barline at least `overlap` of a window before that end, so every measure is whole in
    some window and outputs can be stitched by their `box`.
    """
    system = layout.systems[system_index]
    x0, y0, x1, y1 = system.box
    region = cut_region(gray, layout, system.box, slope=system_slope(layout, system_index))
    out_h, out_w = target
    scale = out_h / region.shape[0]
    window = out_w / scale
    bars = [x for x in barline_columns(region, layout, system_index)]
    cuts = []
    start = 0.0
    width = float(region.shape[1])
    while True:
        end = min(width, start + window)
        if end < width:
            fitting = [b for b in bars if start + window / 2 < b <= end]
            end = fitting[-1] if fitting else end
        cuts.append((start, end))
        if end >= width:
            break
        back = [b for b in bars if start < b <= end - overlap * window]
        start = back[-1] if back else end - overlap * window
    crops = []
    for tile, (a, b) in enumerate(cuts):
        box = (x0 + a, y0, x0 + b, y1)
        piece = region[:, round(a) : max(round(a) + 1, round(b))]
        image, piece_scale, offset = fit_to(piece, target, fit="pad")
        crops.append(
            Crop(
                image=image,
                page_index=page_index,
                system_index=system_index,
                box=box,
                scale=piece_scale,
                offset=offset,
                tile_index=tile,
                n_tiles=len(cuts),
            )
        )
    return crops


def barline_columns(region: np.ndarray, layout: PageLayout, system_index: int) -> list[float]:
    """x positions (region pixels) of barlines: columns inked across every staff of the system."""
    system = layout.systems[system_index]
    ink = region < 128
    y_origin = system.box[1]
    covered = np.ones(region.shape[1], bool)
    for staff in system.staves:
        rows = ink[round(staff.top - y_origin) : round(staff.bottom - y_origin) + 1]
        covered &= rows.mean(axis=0) >= 0.95
    columns = np.flatnonzero(covered)
    if columns.size == 0:
        return []
    # Adjacent columns are one (thick) barline: keep each run's centre.
    breaks = np.flatnonzero(np.diff(columns) > 1)
    runs = np.split(columns, breaks + 1)
    return [float(run.mean()) for run in runs]


def stack(crops: list[Crop]) -> np.ndarray:
    """Crops of one size -> float32[B, H, W, 3] batch."""
    return np.stack([crop.image for crop in crops]).astype(np.float32)


def _resize(gray: np.ndarray, width: int, height: int) -> np.ndarray:
    shrinking = width < gray.shape[1] or height < gray.shape[0]
    method = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(gray, (width, height), interpolation=method)


def _normalise(gray: np.ndarray) -> np.ndarray:
    values = gray.astype(np.float32) / 127.5 - 1.0
    return np.repeat(values[:, :, None], 3, axis=2)

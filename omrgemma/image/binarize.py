"""Ink masks from greyscale pages: Otsu (even light, scans) or Sauvola (uneven light, photos)."""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np

Binarize = Literal["otsu", "sauvola", "none"]


def ink_mask(gray: np.ndarray, method: Binarize = "otsu", *, lenient: bool = False) -> np.ndarray:
    """uint8[H, W] greyscale (0 black) -> uint8[H, W] mask, 1 where there is ink.

    "none" takes the page as already black and white (threshold at mid-grey).
    lenient: also count light grey as ink (Otsu only), for small renders whose sub-pixel staff
    lines are smeared over two grey rows.
    """
    if method == "otsu":
        threshold, mask = cv2.threshold(gray, 0, 1, cv2.THRESH_BINARY_INV | cv2.THRESH_OTSU)
        if lenient:
            mask = (gray < (threshold + 255) / 2).astype(np.uint8)
        return mask
    if method == "sauvola":
        return sauvola(gray)
    if method == "none":
        return (gray < 128).astype(np.uint8)
    raise ValueError(f"unknown binarisation {method!r}")


def sauvola(gray: np.ndarray, *, window: int = 0, k: float = 0.2, r: float = 128.0) -> np.ndarray:
    """Sauvola's local threshold T = m * (1 + k (s / r - 1)) over a window (odd, pixels).

    window=0 picks about 1/40 of the shorter side: wider than a notehead, narrower than a shadow.
    Box filters over the image and its square make it O(H W) whatever the window.
    """
    if window <= 0:
        window = max(15, (min(gray.shape) // 40) | 1)
    image = gray.astype(np.float32)
    mean = cv2.boxFilter(image, cv2.CV_32F, (window, window), borderType=cv2.BORDER_REFLECT)
    mean_sq = cv2.boxFilter(
        image * image, cv2.CV_32F, (window, window), borderType=cv2.BORDER_REFLECT
    )
    std = np.sqrt(np.maximum(mean_sq - mean * mean, 0))
    threshold = mean * (1 + k * (std / r - 1))
    return (image < threshold).astype(np.uint8)


def remove_specks(mask: np.ndarray, *, max_area: int) -> np.ndarray:
    """Drop connected ink components of at most `max_area` pixels (scanner dust, JPEG noise)."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    keep = stats[:, cv2.CC_STAT_AREA] > max_area
    keep[0] = False
    return keep[labels].astype(np.uint8)


def clear_edge_borders(
    ink: np.ndarray,
    *,
    zone: float = 0.1,
    run: float = 0.3,
    staff_rows: tuple[float, float] | None = None,
) -> np.ndarray:
    """Blank the dark bands a scanner leaves at the left and right page edges.

    A column within `zone` (share of the width) of an edge holding one unbroken stroke over at
    least `run` of the page height is border: staff lines run into it and it would join every
    system. A system's left line can be as long on a page with one or two systems, so when the
    staves are known, `staff_rows` (first staff top, last staff bottom, with some margin) keeps
    strokes that lie within them. The band is cleared from the edge to its innermost border
    column, then across its ragged, speckled inner edge. uint8[H, W] -> uint8[H, W] (a copy when
    anything is cleared).
    """
    height, width = ink.shape
    limit = max(1, round(zone * width))
    left = np.flatnonzero(_is_border(ink[:, :limit], run * height, staff_rows))
    right = np.flatnonzero(_is_border(ink[:, width - limit :], run * height, staff_rows))
    if left.size == 0 and right.size == 0:
        return ink
    speckled = ink.mean(axis=0, dtype=np.float32) >= 0.15
    pad = max(2, width // 200)
    ink = ink.copy()
    if left.size:
        edge = left[-1]
        while edge + 1 < limit and speckled[edge + 1]:
            edge += 1
        ink[:, : edge + 1 + pad] = 0
    if right.size:
        edge = width - limit + right[0]
        while edge - 1 > width - limit and speckled[edge - 1]:
            edge -= 1
        ink[:, max(0, edge - pad) :] = 0
    return ink


def _is_border(
    ink: np.ndarray, min_run: float, staff_rows: tuple[float, float] | None, *, bridge: int = 5
) -> np.ndarray:
    """bool[W]: columns whose longest vertical run (bridging `bridge`-px breaks) is at least
    `min_run` long and, with `staff_rows`, reaches outside those rows."""
    closed = cv2.morphologyEx(ink, cv2.MORPH_CLOSE, np.ones((bridge, 1), np.uint8)) > 0
    rows = np.arange(closed.shape[0])[:, None]
    last_gap = np.maximum.accumulate(np.where(closed, -1, rows), axis=0)
    lengths = rows - last_gap
    longest = lengths.max(axis=0, initial=0)
    border = longest >= min_run
    if staff_rows is not None:
        end = lengths.argmax(axis=0)
        start = end - longest + 1
        border &= (start < staff_rows[0]) | (end > staff_rows[1])
    return border

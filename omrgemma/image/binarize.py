"""Ink masks from greyscale pages: Otsu (even light, scans) or Sauvola (uneven light, photos)."""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np

Binarize = Literal["otsu", "sauvola", "none"]


def ink_mask(gray: np.ndarray, method: Binarize = "otsu") -> np.ndarray:
    """uint8[H, W] greyscale (0 black) -> uint8[H, W] mask, 1 where there is ink.

    "none" takes the page as already black and white (threshold at mid-grey).
    """
    if method == "otsu":
        _, mask = cv2.threshold(gray, 0, 1, cv2.THRESH_BINARY_INV | cv2.THRESH_OTSU)
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
    mean_sq = cv2.boxFilter(image * image, cv2.CV_32F, (window, window), borderType=cv2.BORDER_REFLECT)
    std = np.sqrt(np.maximum(mean_sq - mean * mean, 0))
    threshold = mean * (1 + k * (std / r - 1))
    return (image < threshold).astype(np.uint8)


def remove_specks(mask: np.ndarray, *, max_area: int) -> np.ndarray:
    """Drop connected ink components of at most `max_area` pixels (scanner dust, JPEG noise)."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    keep = stats[:, cv2.CC_STAT_AREA] > max_area
    keep[0] = False
    return keep[labels].astype(np.uint8)

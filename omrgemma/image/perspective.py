"""Best-effort perspective correction for phone photos: find the page, warp it flat.

The page is the largest bright quadrilateral in the picture (paper is lighter than the table it
lies on). When one is found it is mapped to an upright rectangle with the page's own aspect
ratio; when not (a scan, a page filling the frame) the image is returned unchanged.
Curvature (a book's bulging pages) is not corrected.
"""

from __future__ import annotations

import cv2
import numpy as np

# The page must cover at least this share of the photo, or it is probably something else.
_MIN_PAGE_AREA = 0.25
_WORK_SIDE = 1000


def find_page_quad(gray: np.ndarray) -> np.ndarray | None:
    """uint8[H, W] photo -> float32[4, 2] page corners (top-left, top-right, bottom-right,
    bottom-left, x y pixels), or None when no page-like quadrilateral is found."""
    height, width = gray.shape
    scale = min(1.0, _WORK_SIDE / max(height, width))
    small = cv2.resize(
        gray, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA
    )
    small = cv2.GaussianBlur(small, (5, 5), 0)
    _, paper = cv2.threshold(small, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    # Close the music's ink so the page is one solid blob.
    paper = cv2.morphologyEx(paper, cv2.MORPH_CLOSE, np.ones((15, 15), np.uint8))
    contours, _ = cv2.findContours(paper, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return None
    contour = max(contours, key=cv2.contourArea)
    if cv2.contourArea(contour) < _MIN_PAGE_AREA * small.size:
        return None
    quad = cv2.approxPolyDP(contour, 0.02 * cv2.arcLength(contour, True), True)
    if len(quad) != 4 or not cv2.isContourConvex(quad):
        return None
    corners = quad.reshape(4, 2).astype(np.float32) / scale
    # A page that already fills the frame needs no warp.
    if _touches_frame(corners, width, height):
        return None
    return _order(corners)


def rectify_page(gray: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """uint8[H, W] photo -> (uint8[h, w] flattened page, float64[3, 3] homography or None).

    The homography maps photo pixels to the returned page; None when nothing was changed.
    """
    corners = find_page_quad(gray)
    if corners is None:
        return gray, None
    top_left, top_right, bottom_right, bottom_left = corners
    width = round(
        max(np.linalg.norm(top_right - top_left), np.linalg.norm(bottom_right - bottom_left))
    )
    height = round(
        max(np.linalg.norm(bottom_left - top_left), np.linalg.norm(bottom_right - top_right))
    )
    target = np.array([[0, 0], [width, 0], [width, height], [0, height]], np.float32)
    matrix = cv2.getPerspectiveTransform(corners, target)
    page = cv2.warpPerspective(
        gray, matrix, (width, height), flags=cv2.INTER_LINEAR, borderValue=255
    )
    return page, matrix


def _order(corners: np.ndarray) -> np.ndarray:
    """Sort four points as top-left, top-right, bottom-right, bottom-left."""
    sums = corners.sum(axis=1)
    diffs = corners[:, 1] - corners[:, 0]
    return np.array(
        [
            corners[np.argmin(sums)],
            corners[np.argmin(diffs)],
            corners[np.argmax(sums)],
            corners[np.argmax(diffs)],
        ],
        np.float32,
    )


def _touches_frame(corners: np.ndarray, width: int, height: int) -> bool:
    margin = 0.01 * max(width, height)
    near = (corners[:, 0] < margin) | (corners[:, 0] > width - margin)
    near |= (corners[:, 1] < margin) | (corners[:, 1] > height - margin)
    return bool(near.all())

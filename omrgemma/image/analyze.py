"""`analyze_page`: a greyscale page in, its staves and systems out (the whole pipeline, timed).

Work happens at reduced resolution (the longer side at most `ANALYSIS_SIDE` pixels, about a
300-dpi page) and results are scaled back, so a 600-dpi page costs little more than a 300-dpi one.
"""

from __future__ import annotations

import dataclasses
import time

import cv2
import numpy as np

from omrgemma.errors import NoStavesError
from omrgemma.image.binarize import Binarize, clear_edge_borders, ink_mask
from omrgemma.image.deskew import estimate_skew, rotation_matrix
from omrgemma.image.layout import PageLayout, Staff, System
from omrgemma.image.staves import find_staves, staff_metrics
from omrgemma.image.systems import group_systems

ANALYSIS_SIDE = 2400
# Skews below this are left alone: rotating would only blur a straight page.
_MIN_ROTATION = 0.03
# Below this staff spacing (pixels) small pages are enlarged before analysis.
_MIN_SPACING = 10.0


def analyze_page(
    gray: np.ndarray,
    *,
    binarize: Binarize = "otsu",
    deskew: bool = True,
    require_staves: bool = True,
    source: str | None = None,
) -> PageLayout:
    """uint8[H, W] greyscale page (0 = black) -> PageLayout in deskewed input pixels.

    binarize: "otsu" for scans, "sauvola" for uneven light (photos), "none" for pages that are
    already black and white. deskew: estimate and undo a rotation of up to 15 degrees.
    Raises NoStavesError (naming `source`) when no staff is found and `require_staves` is set.
    """
    if gray.dtype != np.uint8 or gray.ndim != 2:
        raise ValueError(f"expected uint8[H, W] greyscale, got {gray.dtype}{list(gray.shape)}")
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[stage] = now - clock
        clock = now

    height, width = gray.shape
    scale = min(1.0, ANALYSIS_SIDE / max(height, width))
    small = _resized(gray, scale)
    lap("resize")
    ink = ink_mask(small, binarize)
    lap("binarize")
    _, spacing = staff_metrics(ink)
    if spacing < _MIN_SPACING and max(height, width) * scale < ANALYSIS_SIDE:
        # Lines a pixel thin or thinner come out grey and break up; enlarge small pages first.
        scale = min(scale * _MIN_SPACING * 1.5 / spacing, ANALYSIS_SIDE / max(height, width), 4.0)
        small = _resized(gray, scale)
        ink = ink_mask(small, binarize, lenient=True)
        lap("upscale")

    angle = estimate_skew(ink) if deskew else 0.0
    if abs(angle) < _MIN_ROTATION:
        angle = 0.0
    else:
        matrix = rotation_matrix(small.shape, angle)
        small = cv2.warpAffine(
            small, matrix, small.shape[::-1], flags=cv2.INTER_LINEAR, borderValue=255
        )
        ink = ink_mask(small, binarize, lenient=scale > 1.0)
    lap("deskew")

    thickness, spacing = staff_metrics(ink)
    # Blurred or faded staff lines are lighter than the notes: look for lines in a lenient mask
    # (the horizontal opening in `find_staves` removes the extra noise it lets in).
    line_ink = ink
    if binarize == "otsu" and scale <= 1.0:
        line_ink = ink_mask(small, binarize, lenient=True)
    staves = find_staves(clear_edge_borders(line_ink), spacing=spacing, thickness=thickness)
    lap("staves")
    if staves:
        # Now that the staves are known, a system's own left line is not taken for a border.
        margin = 2 * spacing
        ink = clear_edge_borders(
            ink, staff_rows=(staves[0].top - margin, staves[-1].bottom + margin)
        )
    systems = group_systems(ink, staves)
    staves = [staff for system in systems for staff in system.staves]
    lap("systems")

    if not staves and require_staves:
        raise NoStavesError(
            "no five-line staff found on this page",
            path=source,
            hint="is it sheet music? scan at 300 dpi, or try --binarize sauvola for photos",
        )
    inverse = 1.0 / scale
    return PageLayout(
        shape=(height, width),
        angle=angle,
        transform=rotation_matrix((height, width), angle),
        staves=tuple(_scale_staff(staff, inverse) for staff in staves),
        systems=tuple(_scale_system(system, inverse) for system in systems),
        spacing=spacing * inverse,
        thickness=thickness * inverse,
        timings=timings,
    )


def _resized(gray: np.ndarray, scale: float) -> np.ndarray:
    if scale == 1.0:
        return gray
    height, width = gray.shape
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    method = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_CUBIC
    return cv2.resize(gray, size, interpolation=method)


def _scale_staff(staff: Staff, factor: float) -> Staff:
    return dataclasses.replace(
        staff,
        top=staff.top * factor,
        bottom=staff.bottom * factor,
        line_ys=tuple(y * factor for y in staff.line_ys),
        spacing=staff.spacing * factor,
        thickness=staff.thickness * factor,
        x0=staff.x0 * factor,
        x1=staff.x1 * factor,
    )


def _scale_system(system: System, factor: float) -> System:
    x0, y0, x1, y1 = system.box
    return System(
        staves=tuple(_scale_staff(staff, factor) for staff in system.staves),
        box=(x0 * factor, y0 * factor, x1 * factor, y1 * factor),
    )

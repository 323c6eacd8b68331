"""Model inputs: sizes, value range, padding, geometry, deskewed cuts and barline tiling."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from omrgemma.image import analyze_page
from omrgemma.image.crops import (
    barline_columns,
    cut_region,
    cut_systems,
    fit_to,
    stack,
    system_slope,
    tile_system,
)


def test_fit_pads_with_white_and_keeps_aspect():
    strip = np.zeros((50, 200), np.uint8)  # black, 4:1
    image, scale, offset = fit_to(strip, 224)
    assert image.shape == (224, 224, 3) and image.dtype == np.float32
    assert scale == pytest.approx(224 / 200)
    assert offset == (0.0, 84.0)  # 56 rows of music, (224 - 56) / 2 rows of white above
    assert image.min() == -1.0 and image.max() == 1.0
    assert np.all(image[:84] == 1.0) and np.all(image[84:140] == -1.0)
    assert np.all(image[140:] == 1.0)
    assert np.all(image[..., 0] == image[..., 2])


def test_fit_to_a_wide_target_and_stretch():
    strip = np.full((100, 400), 255, np.uint8)
    strip[:, :200] = 0
    image, scale, offset = fit_to(strip, (64, 512))
    assert image.shape == (64, 512, 3)
    assert scale == pytest.approx(0.64) and offset == (128.0, 0.0)
    assert image[:, 130:250].max() == -1.0 and image[:, 260:380].min() == 1.0
    stretched, _, offset = fit_to(strip, 448, fit="stretch")
    assert stretched.shape == (448, 448, 3) and offset == (0.0, 0.0)
    assert stretched[:, :220].max() == -1.0


def test_downscaling_is_antialiased():
    """One-pixel lines every 4 rows average to grey instead of aliasing to black or white."""
    lines = np.full((400, 400), 255, np.uint8)
    lines[::4] = 0
    image, _, _ = fit_to(lines, 100)
    assert np.allclose(image, (255 * 3 / 4) / 127.5 - 1, atol=0.02)


def test_system_crops_hold_their_staves(rendered_page):
    layout = analyze_page(rendered_page.image)
    crops = cut_systems(rendered_page.image, layout, target=896, page_index=3)
    assert len(crops) == rendered_page.systems
    assert [c.system_index for c in crops] == list(range(len(crops)))
    assert all(c.page_index == 3 for c in crops)
    batch = stack(crops)
    assert batch.shape == (len(crops), 896, 896, 3) and batch.dtype == np.float32
    for crop, system in zip(crops, layout.systems, strict=True):
        staff = system.staves[0]
        # Every staff line, mapped into the model input, is darker along the staff than the
        # space half a staff space below it (a 1-px line shrunk 1.9x is grey, not black).
        x0 = crop.offset[0] + (staff.x0 - crop.box[0]) * crop.scale
        x1 = crop.offset[0] + (staff.x1 - crop.box[0]) * crop.scale
        for y in staff.line_ys[:4]:
            line = crop.offset[1] + (y - crop.box[1]) * crop.scale
            space = line + staff.spacing / 2 * crop.scale
            assert _darkness(crop.image, x0, x1, line) < _darkness(crop.image, x0, x1, space) - 0.4


def _darkness(image: np.ndarray, x0: float, x1: float, y: float) -> float:
    """Median along [x0, x1] of the darker of the two rows nearest y: low on a staff line."""
    rows = image[int(y) : int(y) + 2, round(x0) : round(x1), 0]
    return float(np.median(rows.min(axis=0)))


def test_cut_region_undoes_the_skew(rendered_page):
    height, width = rendered_page.image.shape
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), 3.0, 1.0)
    rotated = cv2.warpAffine(rendered_page.image, matrix, (width, height), borderValue=255)
    layout = analyze_page(rotated)
    staff = layout.staves[1]
    band = cut_region(rotated, layout, (staff.x0, staff.top - 5, staff.x1, staff.bottom + 6))
    top = round(staff.top - 5)
    for y in staff.line_ys:
        # Straight, level lines: within a pixel of its row all along the crop (a 3-degree
        # skew left in would drift 70 px over this width).
        near = band[round(y) - top - 1 : round(y) - top + 2].min(axis=0)
        assert (near < 170).mean() > 0.95


def test_tiles_cut_at_barlines_and_overlap(rendered_page):
    layout = analyze_page(rendered_page.image)
    region = cut_region(rendered_page.image, layout, layout.systems[1].box)
    bars = barline_columns(region, layout, 1)
    assert len(bars) >= 3
    tiles = tile_system(rendered_page.image, layout, 1, target=(128, 384), overlap=0.15)
    assert len(tiles) >= 2
    assert [t.tile_index for t in tiles] == list(range(len(tiles)))
    assert all(t.n_tiles == len(tiles) and t.image.shape == (128, 384, 3) for t in tiles)
    x0 = layout.systems[1].box[0]
    assert tiles[0].box[0] == x0
    assert tiles[-1].box[2] == pytest.approx(layout.systems[1].box[2], abs=1)
    for left, right in zip(tiles, tiles[1:], strict=False):
        assert right.box[0] < left.box[2]  # overlap
        assert min(abs(right.box[0] - x0 - b) for b in bars) < 1.0  # starts on a barline


def test_crops_of_a_page_that_is_not_flat_have_level_lines(rendered_page):
    """Lines slanting up to 1 degree at the bottom of the page are sheared level in the crop."""
    height, width = rendered_page.image.shape
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    slope = np.tan(np.radians(1.0)) * (ys / height) ** 2
    source_ys = (ys + slope * (xs - width / 2)).astype(np.float32)
    warped = cv2.remap(rendered_page.image, xs, source_ys, cv2.INTER_LINEAR, borderValue=255)
    layout = analyze_page(warped)
    system = layout.systems[-1]
    assert abs(system.staves[0].slope) > 0.003
    region = cut_region(
        warped, layout, system.box, slope=system_slope(layout, len(layout.systems) - 1)
    )
    staff = system.staves[0]
    x0, x1 = round(staff.x0 - system.box[0]), round(staff.x1 - system.box[0])
    for y in staff.line_ys:
        row = round(y - system.box[1])
        near = region[row - 2 : row + 3, x0:x1].min(axis=0)
        assert (near < 170).mean() > 0.95

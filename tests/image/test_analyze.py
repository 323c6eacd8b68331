"""Staff and system detection on synthetic pages with known layout, clean and degraded."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from omrgemma.errors import NoStavesError
from omrgemma.image import analyze_page, draw_overlay
from omrgemma.image.deskew import estimate_skew
from omrgemma.image.perspective import find_page_quad, rectify_page


def _rotate(image: np.ndarray, degrees: float) -> np.ndarray:
    """Rotate counter-clockwise on a canvas padded so no music is cut off."""
    pad = round(0.12 * max(image.shape))
    padded = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=255)
    height, width = padded.shape
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, 1.0)
    return cv2.warpAffine(padded, matrix, (width, height), borderValue=255)


def _assert_layout(layout, page) -> None:
    assert len(layout.systems) == page.systems
    assert [len(s.staves) for s in layout.systems] == [page.staves_per_system] * page.systems
    for staff in layout.staves:
        gaps = np.diff(staff.line_ys)
        assert np.all(np.abs(gaps - staff.spacing) < 0.2 * staff.spacing)


def test_clean_page(rendered_page):
    layout = analyze_page(rendered_page.image)
    assert rendered_page.systems >= 3
    _assert_layout(layout, rendered_page)
    assert layout.angle == 0.0
    assert 12 <= layout.spacing <= 16  # verovio at scale 40, zoom 2: 14 px staff spaces
    # Boxes hold their staves, follow each other down the page and do not overlap.
    boxes = [s.box for s in layout.systems]
    for system, (x0, y0, x1, y1) in zip(layout.systems, boxes, strict=True):
        assert y0 < system.staves[0].top - 2 * layout.spacing
        assert y1 > system.staves[-1].bottom + 2 * layout.spacing
        assert x0 <= min(s.x0 for s in system.staves) and x1 >= max(s.x1 for s in system.staves)
    for above, below in zip(boxes, boxes[1:], strict=False):
        assert above[3] <= below[1]


@pytest.mark.parametrize("degrees", [-8.0, -2.5, 0.7, 4.0, 12.0])
def test_rotated_page(rendered_page, degrees):
    rotated = _rotate(rendered_page.image, degrees)
    layout = analyze_page(rotated)
    assert layout.angle == pytest.approx(degrees, abs=0.1)
    _assert_layout(layout, rendered_page)


def test_skew_estimate_sign_and_precision(rendered_page):
    ink = (_rotate(rendered_page.image, 3.0) < 128).astype(np.uint8)
    assert estimate_skew(ink) == pytest.approx(3.0, abs=0.06)
    assert estimate_skew(ink[:, ::-1].copy()) == pytest.approx(-3.0, abs=0.06)


def test_noise_blur_and_jpeg(rendered_page):
    rng = np.random.default_rng(0)
    image = _rotate(rendered_page.image, 1.3).astype(np.float32)
    image = cv2.GaussianBlur(image, (5, 5), 1.2)
    image += rng.normal(0, 25, image.shape)
    speckles = rng.random(image.shape) < 0.002
    image[speckles] = 0
    noisy = np.clip(image, 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noisy).save(buffer, "JPEG", quality=25)
    degraded = np.array(Image.open(buffer))
    _assert_layout(analyze_page(degraded), rendered_page)


def test_uneven_light_needs_sauvola(rendered_page):
    height, width = rendered_page.image.shape
    # Light falls off from left to right: the right side of the page is mid grey.
    shade = np.linspace(1.0, 0.45, width)[None, :]
    dim = (rendered_page.image.astype(np.float32) * shade).astype(np.uint8)
    _assert_layout(analyze_page(dim, binarize="sauvola"), rendered_page)


def test_perspective_photo_is_rectified(rendered_page):
    page = rendered_page.image
    height, width = page.shape
    pad = 200
    photo = cv2.copyMakeBorder(page, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=70)
    source = np.float32(
        [[pad, pad], [pad + width, pad], [pad + width, pad + height], [pad, pad + height]]
    )
    moved = source + np.float32([[60, 40], [-90, 10], [-30, -50], [50, -20]])
    matrix = cv2.getPerspectiveTransform(source, moved)
    photo = cv2.warpPerspective(photo, matrix, photo.shape[::-1], borderValue=70)

    corners = find_page_quad(photo)
    assert corners is not None
    assert np.abs(corners - moved).max() < 8
    flat, homography = rectify_page(photo)
    assert homography is not None
    assert abs(flat.shape[0] / flat.shape[1] - height / width) < 0.05
    _assert_layout(analyze_page(flat), rendered_page)


def test_scan_without_a_page_edge_is_left_alone(rendered_page):
    flat, homography = rectify_page(rendered_page.image)
    assert homography is None and flat is rendered_page.image


def test_small_page_with_sub_pixel_lines(rendered_page):
    """Half size (staff space 7 px, lines grey and smeared over two rows) is enlarged first."""
    height, width = rendered_page.image.shape
    small = cv2.resize(rendered_page.image, (width // 2, height // 2), interpolation=cv2.INTER_AREA)
    layout = analyze_page(small)
    _assert_layout(layout, rendered_page)
    assert layout.spacing == pytest.approx(7, abs=1)


def test_600_dpi_page_is_analysed_at_reduced_resolution(rendered_page):
    big = cv2.resize(rendered_page.image, None, fx=2.5, fy=2.5, interpolation=cv2.INTER_CUBIC)
    layout = analyze_page(big)
    _assert_layout(layout, rendered_page)
    assert layout.spacing == pytest.approx(35, abs=3)
    assert layout.shape == big.shape


def test_blank_and_text_pages_have_no_staves():
    blank = np.full((800, 600), 255, np.uint8)
    with pytest.raises(NoStavesError):
        analyze_page(blank)
    text = blank.copy()
    for row in range(60, 760, 30):  # lines of "words": short dark blocks
        for col in range(40, 560, 50):
            text[row : row + 12, col : col + 35] = 0
    with pytest.raises(NoStavesError, match="no five-line staff"):
        analyze_page(text)
    assert analyze_page(text, require_staves=False).staves == ()


def test_overlay_marks_staff_lines_and_boxes(rendered_page):
    layout = analyze_page(rendered_page.image)
    overlay = draw_overlay(rendered_page.image, layout)
    assert overlay.shape == (*rendered_page.image.shape, 3) and overlay.dtype == np.uint8
    staff = layout.staves[0]
    row = overlay[round(staff.line_ys[2]), round((staff.x0 + staff.x1) / 2)]
    assert tuple(row) == (0, 160, 255)
    x0, y0, _, _ = (round(v) for v in layout.systems[0].box)
    assert tuple(overlay[y0, x0 + 20]) == (230, 0, 0)


def test_dark_page_edge_touching_the_staves(rendered_page):
    """A scanner's black band at the left edge, with every staff line running into it, must
    neither join all systems into one nor hide the staves."""
    layout = analyze_page(rendered_page.image)
    page = cv2.copyMakeBorder(rendered_page.image, 0, 0, 60, 0, cv2.BORDER_CONSTANT, value=255)
    page[:, :30] = 0
    for staff in layout.staves:
        for y in staff.line_ys:
            page[round(y), 30 : round(staff.x0) + 60] = 0
    _assert_layout(analyze_page(page), rendered_page)


def test_pencil_line_between_systems_does_not_join_them(rendered_page):
    layout = analyze_page(rendered_page.image)
    page = rendered_page.image.copy()
    upper, lower = layout.systems[0].staves[-1], layout.systems[1].staves[0]
    x = round((upper.x0 + upper.x1) / 2)
    page[round(upper.top) : round(lower.bottom), x : x + 2] = 0
    _assert_layout(analyze_page(page), rendered_page)


def test_page_that_is_not_flat(rendered_page):
    """Staff lines slant more and more down the page (up to 1 degree at the bottom), as when a
    book's page bends on the scanner: one page angle cannot straighten them all."""
    height, width = rendered_page.image.shape
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    slope = np.tan(np.radians(1.0)) * (ys / height) ** 2
    source_ys = (ys + slope * (xs - width / 2)).astype(np.float32)
    warped = cv2.remap(rendered_page.image, xs, source_ys, cv2.INTER_LINEAR, borderValue=255)
    layout = analyze_page(warped)
    _assert_layout(layout, rendered_page)
    assert abs(layout.staves[-1].slope) > abs(layout.staves[0].slope)


def test_footnote_examples_are_not_systems(rendered_page):
    """A short lone staff under the music (a footnote's example, as in the Ricordi Scarlatti
    edition) and a smaller one are not systems of the piece."""
    layout = analyze_page(rendered_page.image)
    staff = layout.staves[0]
    pad = round(20 * staff.spacing)
    page = cv2.copyMakeBorder(rendered_page.image, 0, pad, 0, 0, cv2.BORDER_CONSTANT, value=255)
    top, bottom = round(staff.top - staff.spacing), round(staff.bottom + staff.spacing)
    x0, width = round(staff.x0), round(0.4 * (staff.x1 - staff.x0))
    example = rendered_page.image[top:bottom, x0 : x0 + width]
    y = rendered_page.image.shape[0] + round(2 * staff.spacing)
    page[y : y + example.shape[0], x0 : x0 + width] = example
    small = cv2.resize(example, None, fx=0.6, fy=0.6, interpolation=cv2.INTER_AREA)
    y += example.shape[0] + round(3 * staff.spacing)
    page[y : y + small.shape[0], x0 + width : x0 + width + small.shape[1]] = small
    with_examples = analyze_page(page)
    _assert_layout(with_examples, rendered_page)
    assert len(with_examples.staves) == rendered_page.systems * rendered_page.staves_per_system

"""Following bent staff lines and leaning strokes (`omrgemma.pipeline.geometry`)."""

from __future__ import annotations

import numpy as np
import pytest

from omrgemma.image.layout import Staff
from omrgemma.pipeline import geometry

WIDTH, HEIGHT, SPACING = 900, 160, 10.0
TOP = 60.0


def true_lines(x: np.ndarray) -> np.ndarray:
    """float[5, len(x)]: a staff whose lines bend (a parabola, 6 px at the ends) and spread
    from 0.9 to 1.1 spacings from left to right (perspective)."""
    bend = 6.0 * ((x - WIDTH / 2) / (WIDTH / 2)) ** 2
    spread = SPACING * (0.9 + 0.2 * x / WIDTH)
    middle = TOP + 2 * SPACING + bend
    return middle[None, :] + (np.arange(5)[:, None] - 2) * spread[None, :]


def straight_staff() -> Staff:
    """The staff as one straight fit would describe it (its lines at the middle column)."""
    ys = tuple(float(y) for y in true_lines(np.array([WIDTH / 2]))[:, 0])
    return Staff(top=ys[0], bottom=ys[-1], line_ys=ys, spacing=SPACING, thickness=2.0,
                 x0=0.0, x1=float(WIDTH), slope=0.0)  # fmt: skip


def staff_ink(strokes: list[tuple[float, float]] = ()) -> np.ndarray:
    """uint8[H, W] ink of the bent staff, plus (x, lean) strokes from its top to bottom line."""
    ink = np.zeros((HEIGHT, WIDTH), np.uint8)
    x = np.arange(WIDTH)
    for row in true_lines(x):
        for dy in (0, 1):
            ink[np.round(row).astype(int) + dy, x] = 1
    lines = true_lines(x)
    for x0, lean in strokes:
        centre = lines[2, int(x0)]
        for y in range(int(lines[0, int(x0)]), int(lines[4, int(x0)]) + 1):
            column = int(round(x0 + lean * (y - centre)))
            ink[y, column : column + 2] = 1
    return ink


def test_track_staff_follows_bent_and_spreading_lines():
    staff = straight_staff()
    columns = np.arange(WIDTH)
    truth = true_lines(columns)
    straight_error = np.abs(geometry.straight_lines(staff, WIDTH) - truth).max()
    assert straight_error >= 7  # the straight description is far off at the ends
    tracked = geometry.track_staff(staff_ink(), staff)
    assert tracked.shape == (5, WIDTH)
    assert np.abs(tracked - truth)[:, 20:-20].max() <= 1.5


def test_track_staff_keeps_the_straight_lines_where_there_is_no_ink():
    staff = straight_staff()
    blank = np.zeros((HEIGHT, WIDTH), np.uint8)
    assert np.array_equal(geometry.track_staff(blank, staff),
                          geometry.straight_lines(staff, WIDTH))  # fmt: skip


def leans_found(strokes):
    ink = staff_ink(strokes)
    lines = [geometry.track_staff(ink, straight_staff())]
    pivot = float(lines[0][2].mean())
    shears = [geometry.shear(ink, float(lean), pivot) for lean in geometry.LEANS]
    return geometry.LEANS[geometry.stroke_lean(shears, lines, SPACING)]


def test_stroke_lean_follows_strokes_leaning_more_towards_one_end():
    xs = np.arange(40, WIDTH - 40, 25)
    lean = lambda x: 0.2 - 0.3 * x / WIDTH  # noqa: E731 - perspective: 0.2 at the left, -0.1 at the right
    found = leans_found([(x, lean(x)) for x in xs])
    truth = lean(np.arange(WIDTH))
    assert np.abs(found - truth)[40:-40].max() <= 0.05


def test_upright_strokes_give_no_lean():
    found = leans_found([(x, 0.0) for x in np.arange(40, WIDTH - 40, 25)])
    assert (found == 0).all()


@pytest.mark.parametrize("lean", [0.2, -0.15])
def test_shear_makes_a_leaning_stroke_upright(lean):
    ink = np.zeros((HEIGHT, WIDTH), np.uint8)
    for y in range(40, 120):
        ink[y, round(400 + lean * (y - 80))] = 1
    upright = geometry.shear(ink, lean, 80.0)
    assert upright[40:120, 399:402].any(axis=1).all()  # nearest-pixel rounding: one column
    assert upright[40:120].sum() == ink.sum()

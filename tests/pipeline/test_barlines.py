"""Counting a system's measures by its barlines (`omrgemma.pipeline.barlines`)."""

from __future__ import annotations

import numpy as np
import pytest

from omrgemma.kern.parse import parse
from omrgemma.pipeline.barlines import measure_count, measure_ends
from omrgemma.pipeline.staves import find_system_staves

# Five measures of a piano system: chords whose stems span a staff, beams, a spine split,
# and a tie, none of which is a barline.
PIANO = """**kern\t**kern
*clefF4\t*clefG2
*k[b-]\t*k[b-]
*M3/4\t*M3/4
4FF 4F\t4f 4a 4cc 4ff
4C\t8ccL
.\t8ddJ
4A\t4ff
=\t=
*\t*^
2.D\t4dd\t4b-
.\t4cc\t4a
.\t4b-\t4g
=\t=\t=
*\t*v\t*v
4GG\t4gg
4B-\t8ffL
.\t8eeJ
4D\t4dd
=\t=
2.FF 2.F\t2.ff 2.aa 2.ccc
=\t=
4C\t[4ee
4E\t4ee]
4G\t4dd
==\t==
*-\t*-
"""
SONG = "**kern\n*clefG2\n*k[]\n*M4/4\n4c\n4e\n4g\n4cc\n=\n8ddL\n8ccJ\n8b\n8a\n2g\n=\n8dd\n8ee\n4r\n2r\n==\n*-\n"


@pytest.fixture(scope="module")
def piano_image() -> np.ndarray:
    from omrgemma.data.render import render_system

    return render_system(PIANO)


def test_a_render_has_as_many_measures_as_its_kern(piano_image):
    staves = find_system_staves(piano_image)
    assert len(staves) == 2
    assert measure_count(piano_image, staves) == len(parse(PIANO).measures) == 5


def test_a_lone_staffs_count_is_unknown():
    """Its stems can span it as a barline does (the last two notes of SONG)."""
    from omrgemma.data.render import render_system

    image = render_system(SONG)
    staves = find_system_staves(image)
    assert len(staves) == 1 and measure_ends(image, staves) == []
    assert measure_count(image, staves) is None


def test_measure_ends_are_the_barlines_left_to_right(piano_image):
    staves = find_system_staves(piano_image)
    ends = measure_ends(piano_image, staves)
    assert ends == sorted(ends) and len(ends) == 5
    assert ends[-1] == pytest.approx(max(s.x1 for s in staves), abs=3 * staves[0].spacing)
    assert min(np.diff(ends)) > 4 * staves[0].spacing  # no stem counted between two barlines


def test_a_system_cut_inside_a_measure_counts_the_unfinished_one(piano_image):
    staves = find_system_staves(piano_image)
    ends = measure_ends(piano_image, staves)
    cut = round((ends[2] + ends[3]) / 2)  # halfway through the fourth measure
    assert measure_count(np.ascontiguousarray(piano_image[:, :cut]), staves) == 4


def test_no_barlines_no_count():
    blank = np.full((200, 600), 255, np.uint8)
    assert measure_ends(blank, []) == [] and measure_count(blank, []) is None
    lines = blank.copy()
    for y in range(60, 110, 12):  # a bare staff: lines, no barline
        lines[y : y + 2, 20:580] = 0
    assert measure_count(lines, find_system_staves(lines)) is None


def test_most_real_scan_systems_count_their_reference_measures(shared_data):
    """Barlines on printed scans (training movements' scans: the dev cut)."""
    from omrgemma.data import testsets

    examples = list(testsets.build("real-scans-dev", shared_data, limit=24))
    right = sum(
        measure_count(e.image, find_system_staves(e.image)) == len(parse(e.kern).measures)
        for e in examples
    )
    assert right >= 0.75 * len(examples)


def test_a_measure_too_wide_to_be_one_makes_the_count_unknown_not_short():
    """A barline the search misses (blur, a broken line) would otherwise cut the reading short."""
    from omrgemma.data.render import render_system

    four_more = "4C\t4c\n4E\t4e\n4G\t4g\n=\t=\n" * 4
    image = render_system(PIANO.replace("==\t==\n*-\t*-\n", "=\t=\n" + four_more + "*-\t*-\n"))
    staves = find_system_staves(image)
    ends = measure_ends(image, staves)
    assert len(ends) == 9
    spacing = staves[0].spacing
    erased = image.copy()
    for x in ends[:-1]:  # every barline but the last gone: one "measure" across the system
        erased[:, round(x - spacing / 2) : round(x + spacing / 2)] = 255
    assert measure_ends(erased, staves) == [] and measure_count(erased, staves) is None


def leaning(image: np.ndarray) -> np.ndarray:
    """The image as a camera not square to the page sees it: upright strokes lean, more at the
    left than at the right."""
    import cv2

    image = cv2.copyMakeBorder(image, 30, 30, 60, 60, cv2.BORDER_CONSTANT, value=255)
    h, w = image.shape
    corners = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    moved = np.float32([[0.25 * h, 0], [w + 0.05 * h, 0], [w, h], [0, h]])
    matrix = cv2.getPerspectiveTransform(corners, moved)
    return cv2.warpPerspective(image, matrix, (w, h), borderValue=255)


def test_a_photographed_systems_leaning_barlines_are_counted(piano_image, monkeypatch):
    from omrgemma.pipeline import barlines, geometry

    image = leaning(piano_image)
    staves = find_system_staves(image)
    assert len(staves) == 2
    assert measure_count(image, staves) == 5
    # the lean is what makes them count: looked for upright only, they are missed
    monkeypatch.setattr(geometry, "LEANS", np.array([0.0]))
    monkeypatch.setattr(barlines, "LEANS", np.array([0.0]))
    assert measure_count(image, staves) is None

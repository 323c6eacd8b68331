"""Wide staves read in windows cut at the system's barlines (`omrgemma.pipeline.windows`)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from omrgemma.image.layout import Staff
from omrgemma.kern.parse import parse
from omrgemma.kern.validate import validate
from omrgemma.pipeline.staves import (
    StaffReader,
    find_system_staves,
    joined_measure_confidence,
    split_staves,
    staff_windows,
)
from omrgemma.pipeline.windows import (
    WindowPlan,
    find_barlines,
    join_windows,
    plan_windows,
    window_images,
)
from omrgemma.recognizer import SystemResult

# Eight measures of a piano system; engraved in one line it is far wider than MAX_RATIO.
WIDE = (
    "**kern\t**kern\n*clefF4\t*clefG2\n*k[]\t*k[]\n*M4/4\t*M4/4\n"
    + "4C\t4c 4e\n4E\t4g\n4G\t4cc\n4E\t4g\n=\t=\n" * 8
    + "*-\t*-\n"
)


def _staff(top: float, spacing: float = 10.0, x0: float = 20, x1: float = 980) -> Staff:
    lines = tuple(top + i * spacing for i in range(5))
    return Staff(top=top, bottom=lines[-1], line_ys=lines, spacing=spacing, thickness=1.5,
                 x0=x0, x1=x1, slope=0.0)  # fmt: skip


def _system_ink(barlines=(300, 600), stems=(150, 450)) -> tuple[np.ndarray, list[Staff]]:
    """A two-staff ink mask: staves at rows 50 and 150, barlines through both and the gap at
    `barlines`, one staff's worth of stem (full staff height, as a chord's) at `stems`."""
    ink = np.zeros((260, 1000), np.uint8)
    staves = [_staff(50), _staff(150)]
    for staff in staves:
        for y in staff.line_ys:
            ink[int(y), 20:980] = 1
    ink[50:191, 20:22] = 1  # the opening line
    ink[50:191, 976:980] = 1  # the final barline
    for x in barlines:
        ink[50:191, x : x + 2] = 1
    for x in stems:
        ink[45:91, x : x + 2] = 1  # a stem through the whole upper staff, not the gap
        ink[85:92, x - 8 : x] = 1  # its notehead
    return ink, staves


def test_barlines_are_the_lines_through_every_staff_and_gap():
    ink, staves = _system_ink()
    assert find_barlines(ink, staves) == [(300, 301), (600, 601)]


def test_a_double_barline_is_one_barline_and_one_staff_has_none():
    ink, staves = _system_ink(barlines=(300, 305))
    [(x0, x1)] = find_barlines(ink, staves)
    assert (x0, x1) == (300, 306)
    assert find_barlines(ink, staves[:1]) == []


def test_a_broken_barline_in_the_gap_is_not_a_barline():
    ink, staves = _system_ink(barlines=(300,))
    ink[100:140, 300:302] = 0  # two single-staff barlines, as for two instruments
    assert find_barlines(ink, staves) == []


def test_a_staff_that_fits_is_one_window():
    plan = plan_windows([(300, 301)], 0, 590, height=100, max_ratio=6.0)
    assert plan.spans == ((0, 590),)


def test_windows_are_cut_after_barlines_with_the_first_measure_in_front():
    bars = [(x - 1, x) for x in (199, 399, 599, 799)]  # five measures of 200 px
    plan = plan_windows(bars, 0, 1000, height=100, max_ratio=6.0)
    assert plan.context == (0, 200)
    # the first window takes three measures (600 px); later ones 200 px of context + up to 400
    assert plan.spans == ((0, 600), (600, 1000))
    plan = plan_windows(bars, 0, 1000, height=100, max_ratio=5.0)
    assert plan.spans == ((0, 400), (400, 600), (600, 800), (800, 1000))


def test_a_measure_wider_than_the_limit_is_a_window_of_its_own():
    plan = plan_windows([(99, 100), (799, 800)], 0, 900, height=100, max_ratio=3.0)
    assert plan.spans == ((0, 101), (101, 801), (801, 900))


def test_window_images_start_with_the_first_measure():
    crop = np.tile(np.arange(1000, dtype=np.int64) % 251, (20, 1)).astype(np.uint8)
    plan = WindowPlan(spans=((0, 400), (400, 700), (700, 1000)), context=(0, 200))
    first, second, third = window_images(crop, plan)
    assert np.array_equal(first, crop[:, :400])
    assert np.array_equal(second, np.hstack([crop[:, :200], crop[:, 400:700]]))
    assert np.array_equal(third[:, 200:], crop[:, 700:])


def test_join_windows_drops_each_windows_copy_of_the_first_measure():
    first = "**kern\n*clefG2\n*k[f#]\n*M3/4\n2.g\n=\n4a\n4b\n4cc\n=\n*-\n"
    second = "**kern\n*clefG2\n*k[f#]\n*M3/4\n2.g\n=\n2.dd\n=\n4ee\n2ff#\n=\n*-\n"
    joined = join_windows([first, second])
    assert joined == (
        "**kern\n*clefG2\n*k[f#]\n*M3/4\n2.g\n=\n4a\n4b\n4cc\n=\n2.dd\n=\n4ee\n2ff#\n=\n*-\n"
    )
    assert not [p for p in validate(parse(joined)) if p.severity == "error"]


def test_join_windows_bridges_a_change_in_the_number_of_voices():
    first = "**kern\n*M2/4\n2c\n=\n*^\n4e\t4g\n4f\t4a\n=\t=\n*-\t*-\n"  # ends in two voices
    second = "**kern\n*M2/4\n2c\n=\n2d\n=\n*-\n"  # continues in one
    third = "**kern\n*M2/4\n*^\n2c\t2e\n=\t=\n2B\t2d\n=\t=\n*-\t*-\n"  # two again
    joined = join_windows([first, second, third])
    lines = joined.splitlines()
    assert lines[7:] == ["=\t=", "*v\t*v", "2d", "=", "*^", "2B\t2d", "=\t=", "*-\t*-"]
    doc = parse(joined)
    assert not [p for p in validate(doc) if p.severity == "error"], joined
    assert len(doc.measures) == 4


def test_join_windows_keeps_a_window_without_a_barline_from_its_first_note():
    joined = join_windows(["**kern\n*M2/4\n2c\n=\n*-\n", "**kern\n*clefG2\n2d\n2e\n*-\n"])
    assert joined == "**kern\n*M2/4\n2c\n=\n2d\n2e\n*-\n"


# --- on an engraved system ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def wide_image() -> np.ndarray:
    from omrgemma.data.render import render_system

    return render_system(WIDE, page_width=6000)


def test_a_wide_engraved_staff_is_read_in_windows_that_each_fit(wide_image):
    import cv2

    from omrgemma.pipeline.staves import _contrast_ink

    staves = find_system_staves(wide_image)
    assert len(staves) == 2
    assert len(find_barlines(_contrast_ink(wide_image), staves)) == 7  # between 8 measures
    whole = split_staves(wide_image)
    windows = staff_windows(wide_image, max_ratio=6.0)
    assert [len(w) for w in windows] == [len(windows[0])] * 2 and len(windows[0]) >= 3
    for staff, parts in zip(whole, windows, strict=True):
        assert staff.shape[1] > 6.0 * staff.shape[0]
        for part in parts:
            assert part.shape[1] <= 6.0 * staff.shape[0] + 8
        # every later window starts with the staff's start (clef, key, meter, first measure)
        third = parts[0].shape[0] // 3
        head = parts[0][third : 2 * third, : parts[0].shape[1] // 4]
        for part in parts[1:]:
            match = cv2.matchTemplate(part, head, cv2.TM_SQDIFF)
            y, x = np.unravel_index(match.argmin(), match.shape)
            assert match.min() <= head.size and x == 0  # float32 sums: not exactly 0
    uncut = staff_windows(wide_image, max_ratio=None)
    assert all(len(w) == 1 and np.array_equal(w[0], s) for w, s in zip(uncut, whole, strict=True))


def _window_answer(measures: int, low: bool = False) -> SystemResult:
    """A staff window's kern: the copied first measure (2c) and `measures` more (2d each)."""
    text = "**kern\n*clefG2\n*M2/4\n2c\n=\n" + "2d\n=\n" * measures + "*-\n"
    pieces = tuple(line + "\n" for line in text.rstrip("\n").split("\n"))
    logprobs = [math.log(0.1 if low and p == "2d\n" else 0.99) for p in pieces]
    return SystemResult(kern=text, tokens=tuple(range(len(pieces))),
                        token_logprobs=np.array(logprobs, np.float32), pieces=pieces)  # fmt: skip


class _Windows:
    """A staff model that answers each window with its measures, read off the window width."""

    unit = "staff"
    image_size = (64, 512)

    def __init__(self) -> None:
        self.calls: list[int] = []

    def recognize(self, images):
        self.calls.append(len(images))
        return [_window_answer(1, low=i == 1) for i in range(len(images))]


def test_the_reader_joins_windows_then_staves(wide_image):
    model = _Windows()
    reader = StaffReader(inner=model, image_size=(1024, 1024), max_ratio=6.0)
    [result] = reader.recognize([wide_image])
    windows = staff_windows(wide_image, max_ratio=6.0)
    assert model.calls == [sum(len(w) for w in windows)]  # every window in one call
    count = len(windows[0])
    assert [len(s.windows) for s in result.staves] == [count, len(windows[1])]
    doc = parse(result.kern)
    # window 1 holds 2 measures (its first), later ones their copy of it and 1 more
    assert len(doc.measures) == 1 + count
    assert not [p for p in validate(doc) if p.severity == "error"]
    scores = joined_measure_confidence(result)
    assert len(scores) == len(doc.measures)
    assert [round(s.p, 2) for s in scores][:2] == [0.99, 0.99]
    assert scores[2].p < 0.5  # the second image's 2d (p = 0.1), the top staff's second window


def test_transcribe_reads_a_scanned_piano_page_in_windows(tmp_path):
    from omrgemma.pipeline.transcribe import TranscribeOptions, transcribe_file

    sample = Path(__file__).resolve().parents[2] / "samples/images/mapleleaf-p1-systems1-2.png"
    model = _Windows()
    report = transcribe_file(sample, model, tmp_path, TranscribeOptions(formats=("krn",)))
    assert report.systems == 2
    [count] = model.calls
    assert count > 4  # more images than the 2 x 2 staves
    kern = (tmp_path / f"{sample.stem}.krn").read_text()
    doc = parse(kern)
    assert doc.spine_types == ("**kern", "**kern")
    assert not [p for p in validate(doc) if p.severity == "error"]
    assert len(doc.measures) > 4  # each window past the first adds its measure
    assert report.low_confidence  # the second image's measure, mapped through the join

"""Count the measures of a system image by its barlines, so each staff is read with that many.

    count = measure_count(gray, staves)   # staves: find_system_staves(gray); None: unknown
    ends = measure_ends(gray, staves)     # x where each measure ends (empty: unknown)

A barline is a thin vertical stroke across every staff of the system, from its top line to its
bottom line, and (in a system of several staves) across the gaps between them as well, where a
piano system's barlines run and stems almost never do. Above the top staff and below the bottom
one it stops, where a stem, which ends at a notehead outside the staff, goes on; and beside it
the staff spaces are empty on at least one side, where a time signature's digits are not.
Strokes closer than `_SAME_BAR` staff spacings are one barline (double and final bars, repeat
signs); one within `_OPENING` spacings of where the staff lines start is the system's opening
line, not the end of a measure. The count is the barlines
found, plus one when the last is not at the lines' right end (the system ends inside a
measure). A measure wider than `_WIDEST` spacings means a missed barline: the count is then
unknown rather than short, since a reading bounded by a short count loses its last measures.

A lone staff has no gap for its barlines to cross, so nothing tells them from a stem that spans
the staff (a note in its top space with the stem down), and its kern may hold barlines that are
not printed (`=-`): its count is unknown. On every 15th system of `single-staff-dev` (193) a
count with the same rules plus a notehead test beside the stroke's ends was right for 99, short
for 20 (Densmore songs: 12 of 59), over for 17 and unknown for 57; bounded by it, the stage-8
model read the `single-staff` test set at SER 29.2 % instead of 26.5 %.

Measured against the reference's measure count (systems of training movements, the dev sets):
`real-scans-dev` (first 200 systems, 300 dpi) 147 right, 10 unknown, 13 over, 30 short; a
look at the short ones found whole movements whose scan systems and kern systems are paired
one off (the image shows other measures than the reference), so not all of these are the
counter's. `grandstaff-like-dev` renders (100) 99 right, 1 short; `camera-like-dev` (60) 5
right, 51 unknown (blurred, leaning barlines), 1 over, 3 short. Without the `_WIDEST` check
camera-like had 12 short, and a reading bounded by them lost 2.8 SER points there.
"""

from __future__ import annotations

import numpy as np

from omrgemma.image.layout import Staff

_ACROSS = 0.95  # share of a staff's height a barline column is inked over
_ACROSS_GAP = 0.85  # ... and of the gap between two staves (print there is often broken)
_BEYOND = (0.6, 1.5)  # staff spacings above the top line (below the bottom line) checked ...
_BEYOND_INK = 0.6  # ... where a barline leaves less than this share of the rows inked
_SAME_BAR = 2.0  # staff spacings: strokes closer than this are one barline
_OPENING = 1.5  # staff spacings from the lines' start: the system's opening line
_WIDEST = 50.0  # staff spacings: a wider "measure" has a barline the search missed
_SAMPLES = 24  # rows sampled between a staff's top and bottom lines
_BESIDE = 0.6  # staff spacings beside a barline where the staff spaces are empty
_SPACE_MIDDLE = 0.5  # of a staff space: the rows beside a barline that must be empty
_THIN = 0.5  # staff spacings: the widest stroke taken for a barline (a final bar's thick one)


def barline_columns(ink: np.ndarray, staves: list[Staff]) -> list[float]:
    """x centres of the barlines of a system (uint8[H, W] ink mask, 1 = ink), left to right.

    Every stroke is returned, the system's opening line included (see `measure_count`).
    """
    height, width = ink.shape
    columns = np.arange(width)
    # one column of slack either side: print and scans are not perfectly upright
    wide = ink.astype(bool)
    wide = wide | np.roll(wide, 1, axis=1) | np.roll(wide, -1, axis=1)
    bar = np.ones(width, bool)
    for staff in staves:
        drift = staff.slope * (columns - width / 2)
        ys = np.linspace(staff.line_ys[0], staff.line_ys[-1], _SAMPLES)[:, None] + drift
        rows = np.clip(np.round(ys).astype(int), 0, height - 1)
        bar &= wide[rows, columns].mean(axis=0) >= _ACROSS
    gaps = np.ones(width, bool)
    for upper, lower in zip(staves[:-1], staves[1:], strict=False):
        rows = slice(int(upper.line_ys[-1]), int(lower.line_ys[0]) + 1)
        gaps &= wide[rows].mean(axis=0) >= _ACROSS_GAP
    if len(staves) > 1 and (bar & gaps).any():  # a system whose barlines join its staves
        bar &= gaps
    spacing = float(np.mean([s.spacing for s in staves]))
    first, last = staves[0], staves[-1]
    beyond = np.zeros(width, bool)
    for y0, y1 in (
        (first.line_ys[0] - _BEYOND[1] * spacing, first.line_ys[0] - _BEYOND[0] * spacing),
        (last.line_ys[-1] + _BEYOND[0] * spacing, last.line_ys[-1] + _BEYOND[1] * spacing),
    ):
        a, b = max(0, int(y0)), min(height, int(y1) + 1)
        if b > a:
            beyond |= ink[a:b].astype(bool).mean(axis=0) > _BEYOND_INK
    xs = np.flatnonzero(bar & ~beyond)
    if xs.size == 0:
        return []
    runs = np.split(xs, np.flatnonzero(np.diff(xs) > 1) + 1)
    bars: list[float] = []
    for run in runs:
        thin = run.size <= _THIN * spacing + 2  # + the column of slack either side
        if not thin or not _clear_beside(ink, staves, run[0], run[-1], spacing):
            continue
        centre = float(run.mean())
        if bars and centre - bars[-1] < _SAME_BAR * spacing:
            bars[-1] = centre  # a double or final bar: the last stroke stands for it
        else:
            bars.append(centre)
    return bars


def _clear_beside(
    ink: np.ndarray, staves: list[Staff], left: int, right: int, spacing: float
) -> bool:
    """Whether the stroke over columns left..right stands alone between the staff lines: on at
    least one side of it, `_BESIDE` spacings away, at most one staff space holds ink (in its
    middle `_SPACE_MIDDLE`; a note may sit close to a barline). The stems of a time
    signature's digits have ink in the spaces on both sides."""
    height, width = ink.shape
    reach = _SPACE_MIDDLE * spacing / 2
    hits = []
    for x in (left - _BESIDE * spacing, right + _BESIDE * spacing):
        column = int(round(x))
        inked = 0
        for staff in staves if 0 <= column < width else ():
            drift = staff.slope * (column - width / 2)
            for a, b in zip(staff.line_ys[:-1], staff.line_ys[1:], strict=True):
                middle = (a + b) / 2 + drift
                rows = slice(max(0, round(middle - reach)), min(height, round(middle + reach) + 1))
                inked += bool(ink[rows, column].any())
        hits.append(inked)
    return min(hits) <= 1


def measure_ends(gray: np.ndarray, staves: list[Staff]) -> list[float]:
    """x where each measure of the system image ends, left to right: its barlines after the
    opening line, and the lines' right end when the last measure has no barline there. Empty
    when unknown: a lone staff (module docstring), no barline found (a staff too faint, or
    music without barlines), or a measure wider than `_WIDEST` spacings, where a barline was
    missed (blur, a broken line)."""
    from omrgemma.pipeline.staves import contrast_ink

    if len(staves) < 2:
        return []
    spacing = float(np.mean([s.spacing for s in staves]))
    start = min(s.x0 for s in staves)
    end = max(s.x1 for s in staves)
    bars = [
        x for x in barline_columns(contrast_ink(gray), staves) if x > start + _OPENING * spacing
    ]
    if bars and bars[-1] < end - _OPENING * spacing:
        bars.append(end)
    if bars and np.diff([start, *bars]).max() > _WIDEST * spacing:
        return []
    return bars


def measure_count(gray: np.ndarray, staves: list[Staff]) -> int | None:
    """How many measures the system image shows (`measure_ends`), None when unknown."""
    return len(measure_ends(gray, staves)) or None


__all__ = ["barline_columns", "measure_count", "measure_ends"]

"""Count the measures of a system image by its barlines, so each staff is read with that many.

    count = measure_count(gray, staves)   # staves: find_system_staves(gray); None: unknown
    ends = measure_ends(gray, staves)     # x where each measure ends (empty: unknown)

A barline is a thin upright stroke across every staff of the system, from its top line to its
bottom line, and (in a system of several staves) across the gaps between them as well, where a
piano system's barlines run and stems almost never do. Above the top staff and below the bottom
one it stops, where a stem, which ends at a notehead outside the staff, goes on; and beside it,
on at least one side, the staff is empty once its lines are taken out, where a time
signature's digits are not. Strokes closer than `_SAME_BAR` staff spacings are one barline
(double and final bars, repeat signs); one within `_OPENING` spacings of where the staff lines
start is the system's opening line, not the end of a measure. The count is the barlines found,
plus one when the last is not at the lines' right end (the system ends inside a measure). A
measure wider than `_WIDEST` spacings means a missed barline: the count is then unknown rather
than short, since a reading bounded by a short count loses its last measures.

In a photograph the staff lines bend and spread and the barlines lean, more towards one end of
the system than the other (`omrgemma.pipeline.geometry`): each staff's lines are followed
column by column (`track_staff`), and a stroke is looked for both upright and at the lean
fitted for its column (`stroke_lean`), in the ink sheared by that lean. A barline's x is where
it crosses the middle row of the system.

A lone staff has no gap for its barlines to cross, so nothing tells them from a stem that spans
the staff (a note in its top space with the stem down), and its kern may hold barlines that are
not printed (`=-`): its count is unknown. On every 15th system of `single-staff-dev` (193) a
count with the same rules plus a notehead test beside the stroke's ends was right for 99, short
for 20 (Densmore songs: 12 of 59), over for 17 and unknown for 57; bounded by it, the stage-8
model read the `single-staff` test set at SER 29.2 % instead of 26.5 %.

Measured against the reference's measure count (systems of training movements, the dev sets;
`benchmarks/barlines.py`, `benchmarks/results/barlines.md`), right / unknown / over / short:
`real-scans-dev` (first 200 systems, 300 dpi) 157 / 7 / 14 / 22; `grandstaff-like-dev` (100)
100 / 0 / 0 / 0; `camera-like-dev` (64) 22 / 35 / 1 / 6. The counter before the staff tracking,
the lean and the line-free test beside the stroke (session 10) had 147 / 10 / 13 / 30, 99 / 0 /
0 / 1 and 5 / 55 / 1 / 3. A look at the short real-scan counts found whole movements whose scan
systems and kern systems are paired one off (the image shows other measures than the
reference), so not all of these are the counter's. Without the `_WIDEST` check camera-like had
12 short (session 10), and a reading bounded by them lost 2.8 SER points there.
"""

from __future__ import annotations

import numpy as np

from omrgemma.image.layout import Staff
from omrgemma.pipeline.geometry import LEANS, shear, stroke_lean, track_staff

_ACROSS = 0.95  # share of a staff's height a barline column is inked over
_ACROSS_GAP = 0.85  # ... and of the gap between two staves (print there is often broken)
_BEYOND = (0.6, 1.5)  # staff spacings above the top line (below the bottom line) checked ...
_BEYOND_INK = 0.6  # ... where a barline leaves less than this share of the rows inked
_SAME_BAR = 2.0  # staff spacings: strokes closer than this are one barline
_OPENING = 1.5  # staff spacings from the lines' start: the system's opening line
_WIDEST = 50.0  # staff spacings: a wider "measure" has a barline the search missed
_SAMPLES = 24  # rows sampled between a staff's top and bottom lines
_BESIDE = 0.6  # staff spacings beside a barline where the staff is empty
_CLEAR = 1.0  # staff spacings of ink (staff lines taken out) an "empty" column may hold
_LINE_LENGTH = 2.0  # staff spacings: horizontal runs this long are staff lines (taken out)
_MARGIN = _BEYOND[1] + 0.5  # staff spacings above and below the staves that are looked at
_THIN = 0.5  # staff spacings: the widest stroke taken for a barline (a final bar's thick one)


def barline_columns(ink: np.ndarray, staves: list[Staff]) -> list[float]:
    """x centres of the barlines of a system (uint8[H, W] ink mask, 1 = ink), left to right.

    Every stroke is returned, the system's opening line included (see `measure_count`).
    """
    lines = [track_staff(ink, staff) for staff in staves]
    spacing = float(np.mean([s.spacing for s in staves]))
    # only the rows from above the top staff to below the bottom one are looked at
    top = max(0, int(lines[0][0].min() - _MARGIN * spacing))
    bottom = min(ink.shape[0], int(lines[-1][-1].max() + _MARGIN * spacing) + 1)
    ink, lines = ink[top:bottom], [staff - top for staff in lines]
    pivot = float((lines[0][0].mean() + lines[-1][-1].mean()) / 2)
    shears = [shear(ink, float(lean), pivot) for lean in LEANS]
    which = stroke_lean(shears, lines, spacing)
    # a stroke is taken at the lean fitted there or upright (the fit is one line through
    # the whole system; a barline may lean a little less or more)
    zero = int(np.abs(LEANS).argmin())
    used = sorted({*np.unique(which).tolist(), zero})
    strokes = np.stack([_upright_strokes(shears[i], lines, spacing) for i in used])
    leaning = strokes[np.searchsorted(used, which), np.arange(ink.shape[1])]
    which = np.where(leaning, which, zero)
    xs = np.flatnonzero(leaning | strokes[used.index(zero)])
    free: dict[int, np.ndarray] = {}  # per lean: the sheared ink without its staff lines
    bars: list[float] = []
    for run in np.split(xs, np.flatnonzero(np.diff(xs) > 1) + 1) if xs.size else []:
        if run.size > _THIN * spacing + 2:  # + the column of slack either side
            continue
        lean = int(np.bincount(which[run]).argmax())
        if lean not in free:
            free[lean] = _without_staff_lines(shears[lean], spacing)
        if not _clear_beside(free[lean], lines, run[0], run[-1], spacing):
            continue
        centre = float(run.mean())
        if bars and centre - bars[-1] < _SAME_BAR * spacing:
            bars[-1] = centre  # a double or final bar: the last stroke stands for it
        else:
            bars.append(centre)
    return bars


def _row_counts(mask: np.ndarray) -> np.ndarray:
    """int32[H + 1, W]: inked rows above each row, per column (cumulative, from a zero row)."""
    counts = np.zeros((mask.shape[0] + 1, mask.shape[1]), np.int32)
    np.cumsum(mask, axis=0, dtype=np.int32, out=counts[1:])
    return counts


def _rows_inked(counts: np.ndarray, top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
    """float[W]: per column, the share of rows top..bottom (per-column floats) that are ink
    (`counts` from `_row_counts`)."""
    height = counts.shape[0] - 1
    a = np.clip(np.round(top).astype(int), 0, height)
    b = np.clip(np.round(bottom).astype(int) + 1, 0, height)
    columns = np.arange(counts.shape[1])
    return (counts[b, columns] - counts[a, columns]) / np.maximum(b - a, 1)


def _upright_strokes(ink: np.ndarray, lines: list[np.ndarray], spacing: float) -> np.ndarray:
    """bool[W]: columns where an upright stroke spans every staff (and the gaps between them,
    where any stroke does) and stops above the top staff and below the bottom one."""
    height, width = ink.shape
    columns = np.arange(width)
    # one column of slack either side: print and scans are not perfectly upright
    wide = ink.astype(bool)
    wide = wide | np.roll(wide, 1, axis=1) | np.roll(wide, -1, axis=1)
    bar = np.ones(width, bool)
    for staff in lines:
        ys = np.linspace(staff[0], staff[-1], _SAMPLES)
        rows = np.clip(np.round(ys).astype(int), 0, height - 1)
        bar &= wide[rows, columns].mean(axis=0) >= _ACROSS
    if len(lines) > 1:
        gaps = np.ones(width, bool)
        wide_counts = _row_counts(wide)
        for upper, lower in zip(lines[:-1], lines[1:], strict=True):
            gaps &= _rows_inked(wide_counts, upper[-1], lower[0]) >= _ACROSS_GAP
        if (bar & gaps).any():  # a system whose barlines join its staves
            bar &= gaps
    near, far = _BEYOND[0] * spacing, _BEYOND[1] * spacing
    counts = _row_counts(ink)
    beyond = (_rows_inked(counts, lines[0][0] - far, lines[0][0] - near) > _BEYOND_INK) | (
        _rows_inked(counts, lines[-1][-1] + near, lines[-1][-1] + far) > _BEYOND_INK
    )
    return bar & ~beyond


def _without_staff_lines(ink: np.ndarray, spacing: float) -> np.ndarray:
    """bool[H, W]: the ink without its horizontal runs `_LINE_LENGTH` spacings long (staff
    lines, and beams with them)."""
    import cv2

    length = max(3, round(_LINE_LENGTH * spacing))
    lines = cv2.morphologyEx(ink, cv2.MORPH_OPEN, np.ones((1, length), np.uint8))
    return ink.astype(bool) & ~lines.astype(bool)


def _clear_beside(
    free: np.ndarray, lines: list[np.ndarray], left: int, right: int, spacing: float
) -> bool:
    """Whether the stroke over columns left..right stands alone in the staves: on at least one
    side of it, `_BESIDE` spacings away, the column holds at most `_CLEAR` spacings of ink
    between the top and bottom lines of all staves together, staff lines taken out (`free`,
    from `_without_staff_lines`; a note may sit close to a barline). The stems of a time
    signature's digits have ink there on both sides."""
    height, width = free.shape
    inked = []
    for x in (left - _BESIDE * spacing, right + _BESIDE * spacing):
        column = round(x)
        if not 0 <= column < width:
            continue
        total = 0
        for staff in lines:
            top = max(0, round(staff[0][column]))
            bottom = min(height, round(staff[-1][column]) + 1)
            total += int(free[top:bottom, column].sum())
        inked.append(total)
    return bool(inked) and min(inked) <= _CLEAR * spacing


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

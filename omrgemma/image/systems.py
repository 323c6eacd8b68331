"""Group staves into systems and choose each system's crop box.

Two neighbouring staves belong to one system when a vertical stroke (a barline or the system's
left line) runs all the way from inside one into the other, or a brace spans both. Between systems nothing does:
dynamics, slurs, lyrics and pencil marks leave white rows or columns.

Crop boxes: neighbouring systems split the gap between them at its emptiest row (ties go to the
middle), so a crop never cuts through notes that could be avoided; the outer edges of the first
and last system take the emptiest row within `margin` staff spaces.
"""

from __future__ import annotations

import cv2
import numpy as np

from omrgemma.image.layout import Box, Staff, System

# Share of the rows between two staves a stroke must cover (after closing small breaks).
_CONNECT_COVERAGE = 0.95
# A lone staff narrower than this share of the page's usual staff, on a page of multi-staff
# systems, is a footnote example or an ossia.
_MIN_LONE_WIDTH = 0.6
# Share of a system's rows a brace must reach (it tapers to a point at both ends).
_BRACE_ROWS = 0.97


def group_systems(ink: np.ndarray, staves: list[Staff], *, margin: float = 6.0) -> list[System]:
    """uint8[H, W] deskewed ink mask + staves (top to bottom) -> systems with crop boxes.

    margin: the largest distance, in staff spaces, from a system's outer lines to its box edge.
    """
    if not staves:
        return []
    borders = _border_columns(ink, staves)
    # Staff lines that run into a dark page edge make a staff start at the edge; no barline
    # lies further left than the page's usual staff start.
    space = float(np.median([staff.spacing for staff in staves]))
    usual_start = float(np.median([staff.x0 for staff in staves]))
    borders[: max(0, round(usual_start - 2 * space))] = True
    groups = [[staves[0]]]
    for upper, lower in zip(staves, staves[1:], strict=False):
        if connected(ink, upper, lower, ignore=borders, start=usual_start) or braced(
            ink, upper, lower, ignore=borders, start=usual_start
        ):
            groups[-1].append(lower)
        else:
            groups.append([lower])
    return _with_boxes(ink, _without_examples(groups), margin)


def connected(
    ink: np.ndarray,
    upper: Staff,
    lower: Staff,
    *,
    ignore: np.ndarray | None = None,
    start: float | None = None,
) -> bool:
    """Whether a barline-like stroke runs from inside one staff, across the gap, into the next.

    The stroke must also cover the last space of the upper staff and the first of the lower:
    barlines and the system's left line do, while slurs and a neighbouring system's ledger-line
    notes, which may reach across a narrow gap, do not. A lone stroke in mid-system (a pencil
    line between systems) is not enough: it takes the left line or two strokes.
    ignore: bool[W] columns not to count (page borders, see `_border_columns`).
    start: where the page's staves usually begin; the system's left line is looked for from
    there too, as lines broken by a partial crop or a clef change may start further right.
    """
    height, width = ink.shape
    space = max(upper.spacing, lower.spacing)
    y0 = round(upper.line_ys[3])
    y1 = round(lower.line_ys[1])
    left = min(upper.x0, lower.x0) if start is None else min(upper.x0, lower.x0, start)
    x0 = max(0, round(left - 2 * space))
    x1 = min(width, round(max(upper.x1, lower.x1) + 1))
    if y1 <= y0 or x1 <= x0:
        return y1 <= y0
    # Follow the staves' residual slant: column c spans rows y0 + shift[c] .. y1 + shift[c].
    slope = (upper.slope + lower.slope) / 2
    shift = np.round(slope * (np.arange(x0, x1) - width / 2)).astype(int)
    margin = int(np.abs(shift).max(initial=0))
    low, high = max(0, y0 - margin), min(height, y1 + margin)
    region = ink[low:high, x0:x1]
    # Tolerate a stroke a pixel off vertical and the small breaks of a 1-bit scan.
    region = cv2.dilate(region, np.ones((1, 3), np.uint8))
    hole = max(3, round(space / 4)) | 1
    region = cv2.morphologyEx(region, cv2.MORPH_CLOSE, np.ones((hole, 1), np.uint8))
    filled = np.zeros((region.shape[0] + 1, region.shape[1]), np.int32)
    np.cumsum(region, axis=0, out=filled[1:])
    starts = np.clip(y0 + shift - low, 0, region.shape[0])
    ends = np.clip(y1 + shift - low, 0, region.shape[0])
    columns = np.arange(x1 - x0)
    coverage = (filled[ends, columns] - filled[starts, columns]) / float(y1 - y0)
    if ignore is not None:
        coverage[ignore[x0:x1]] = 0
    strokes = np.flatnonzero(coverage >= _CONNECT_COVERAGE)
    if strokes.size == 0:
        return False
    # One stroke mid-system may be a pencil line; the system's own left line or a second
    # barline makes it a real join.
    n_strokes = 1 + int(np.count_nonzero(np.diff(strokes) > space))
    at_start = strokes[0] + x0 <= min(upper.x0, lower.x0) + space
    return n_strokes >= 2 or bool(at_start)


def _without_examples(groups: list[list[Staff]]) -> list[list[Staff]]:
    """Drop lone short staves from a page of multi-staff systems: music examples in footnotes
    and ossias, which are not part of the piece's text (and not in its encoding)."""
    if len(groups) < 2 or np.median([len(group) for group in groups]) < 2:
        return groups
    usual = float(np.median([staff.x1 - staff.x0 for group in groups for staff in group]))
    kept = [
        group
        for group in groups
        if len(group) > 1 or group[0].x1 - group[0].x0 >= _MIN_LONE_WIDTH * usual
    ]
    return kept or groups


def braced(
    ink: np.ndarray,
    upper: Staff,
    lower: Staff,
    *,
    ignore: np.ndarray | None = None,
    start: float | None = None,
) -> bool:
    """Whether a brace or bracket joins two staves: some ink in every row between their middle
    lines, in a narrow band left of where the staves begin.
    (Cadenzas and unmeasured passages have a brace but no barlines.)"""
    space = max(upper.spacing, lower.spacing)
    left = min(upper.x0, lower.x0) if start is None else min(upper.x0, lower.x0, start)
    x0, x1 = max(0, round(left - 3 * space)), max(0, round(left - space / 4))
    # Where the (possibly slanting) outer lines cross the band.
    drift = (upper.slope + lower.slope) / 2 * ((x0 + x1) / 2 - ink.shape[1] / 2)
    # From the middle line of one staff to the middle line of the other: the brace's tapering
    # tips may stop short of the outer lines, but never short of these.
    y0, y1 = round(upper.line_ys[2] + drift), round(lower.line_ys[2] + drift) + 1
    y0, y1 = max(0, y0), min(ink.shape[0], y1)
    if x1 <= x0 or y1 <= y0:
        return False
    band = ink[y0:y1, x0:x1].copy()
    if ignore is not None:
        band[:, ignore[x0:x1]] = 0
    return bool(band.any(axis=1).mean() >= _BRACE_ROWS)


def _border_columns(ink: np.ndarray, staves: list[Staff]) -> np.ndarray:
    """bool[W]: columns inked from the first staff to the last, beside the staves: the dark edge
    of a scanned page or a binding shadow, which would otherwise join every system."""
    ignore = np.zeros(ink.shape[1], bool)
    if len(staves) < 3:
        return ignore
    space = float(np.median([staff.spacing for staff in staves]))
    reach = max(3, round(space / 4)) | 1
    span = ink[round(staves[0].top) : round(staves[-1].bottom) + 1]
    coverage = cv2.dilate(span, np.ones((1, reach), np.uint8)).mean(axis=0, dtype=np.float32)
    ignore = coverage >= 0.6
    # Barlines inside the staves never run through every gap, so only the margins are searched.
    # (Medians: a staff whose lines run into the border has its x0 or x1 on the border.)
    left = float(np.median([staff.x0 for staff in staves])) - space
    right = float(np.median([staff.x1 for staff in staves])) + space
    inside = slice(max(0, round(left)), max(0, round(right)))
    ignore[inside] = False
    # Widen by the dilation reach so the neighbouring dilated columns are ignored too.
    return (
        cv2.dilate(ignore.astype(np.uint8)[None, :], np.ones((1, 2 * reach + 1), np.uint8))[0] > 0
    )


def _with_boxes(ink: np.ndarray, groups: list[list[Staff]], margin: float) -> list[System]:
    height, width = ink.shape
    x0 = min(staff.x0 for group in groups for staff in group)
    x1 = max(staff.x1 for group in groups for staff in group)
    space = float(np.median([staff.spacing for group in groups for staff in group]))
    left = max(0.0, x0 - 2.5 * space)
    right = min(float(width), x1 + 1.5 * space)
    rows = ink[:, round(left) : round(right)].sum(axis=1, dtype=np.float32)
    rows = np.convolve(rows, np.ones(3, np.float32) / 3, mode="same")
    reach = margin * space

    tops, bottoms = [], []
    first, last = _upper_edge(groups[0][0], width), _lower_edge(groups[-1][-1], width)
    tops.append(_emptiest(rows, first - reach, first - 2 * space, prefer=first - reach))
    for above, below in zip(groups, groups[1:], strict=False):
        bottom, top = _lower_edge(above[-1], width), _upper_edge(below[0], width)
        low, high = bottom + space, top - space
        cut = _emptiest(rows, low, high, prefer=(low + high) / 2)
        bottoms.append(min(cut, bottom + reach))
        tops.append(max(cut, top - reach))
    bottoms.append(_emptiest(rows, last + 2 * space, last + reach, prefer=last + reach))

    systems = []
    for group, top, bottom in zip(groups, tops, bottoms, strict=True):
        box: Box = (left, max(0.0, top), right, min(float(height), bottom))
        systems.append(System(staves=tuple(group), box=box))
    return systems


def _upper_edge(staff: Staff, width: int) -> float:
    """Highest point of the top line over the staff's extent (it may slant)."""
    return staff.top + min(staff.slope * (x - width / 2) for x in (staff.x0, staff.x1))


def _lower_edge(staff: Staff, width: int) -> float:
    """Lowest point of the bottom line over the staff's extent."""
    return staff.bottom + max(staff.slope * (x - width / 2) for x in (staff.x0, staff.x1))


def _emptiest(rows: np.ndarray, low: float, high: float, *, prefer: float) -> float:
    """The row in [low, high] with the least ink; among near-ties, the one nearest `prefer`."""
    start, stop = max(0, int(low)), min(len(rows), int(high) + 1)
    if stop <= start:
        return float(np.clip(prefer, 0, len(rows)))
    segment = rows[start:stop]
    near_ties = np.flatnonzero(segment <= segment.min() + 0.5)
    choice = near_ties[np.argmin(np.abs(start + near_ties - prefer))]
    return float(start + choice)

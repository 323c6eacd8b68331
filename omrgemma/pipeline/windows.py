"""Wide staves read in windows of a few measures, cut at the system's barlines.

The staff model was trained on staves of 1-4 measures (width/height 2.7 / 4.5 / 6.7 at the
10th / 50th / 90th percentile); a piano system of a printed page holds a staff twice as wide,
which the 64x512 input can only hold shrunk, and the error grows with the width
(`benchmarks/staff_width.py`). A staff wider than `MAX_RATIO` is therefore read in windows:

    bars = find_barlines(gray, staves)              # x ranges of barlines through every staff
    spans = plan_windows(bars, start, end, height)  # [(x0, x1), ...]: measures per window
    images = window_images(crop, spans)             # window i > 0 starts with the first measure
    kern = join_windows([model(image) for image in images])

Every window but the first begins with a copy of the staff's first measure, cut up to its
barline: it carries the clef, key and meter the model needs (a staff rendered alone always
starts with them) and the window looks like a training staff. `join_windows` drops that measure
from the window's kern again (everything up to its first barline), so each measure of the staff
is written once. A system with one staff is not cut: barlines are found where a vertical line
runs through every staff and the gaps between them, which no stem does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from omrgemma.image.layout import Staff

MAX_RATIO = 6.0
"""A staff wider than this (width/height) is read in windows no wider than this where the
measures allow it (a window holds at least one measure)."""

_COVER = 0.9  # share of a staff's (gap's) rows a barline's column must have ink in
_SHIFT = 0.3  # staff spacings: barline columns searched this wide (slant, blur)
_MIN_MEASURE = 3.0  # staff spacings: barlines closer than this are one (double, repeat)


def find_barlines(ink: np.ndarray, staves: Sequence[Staff]) -> list[tuple[int, int]]:
    """Column ranges [x0, x1] of the barlines that run through every staff and gap, left to
    right, without the system's opening line and final barline. ink: uint8[H, W] mask of the
    system (1 = ink); staves: its staves, top to bottom (two or more; one gives none)."""
    import cv2

    if len(staves) < 2:
        return []
    height, width = ink.shape
    spacing = float(np.mean([s.spacing for s in staves]))
    shift = max(3, round(_SHIFT * spacing) | 1)
    wide = cv2.dilate(ink, np.ones((1, shift), np.uint8))
    sums = np.vstack([np.zeros((1, width), np.int32), np.cumsum(wide, axis=0, dtype=np.int32)])
    columns = np.arange(width)

    def coverage(top: float, bottom: float, top_slope: float, bottom_slope: float) -> np.ndarray:
        drift = columns - width / 2
        y0 = np.clip(np.round(top + top_slope * drift).astype(int), 0, height - 1)
        y1 = np.clip(np.round(bottom + bottom_slope * drift).astype(int), y0, height - 1)
        return (sums[y1 + 1, columns] - sums[y0, columns]) / (y1 - y0 + 1)

    spans = [coverage(s.top, s.bottom, s.slope, s.slope) for s in staves]
    spans += [
        coverage(a.bottom, b.top, a.slope, b.slope)
        for a, b in zip(staves[:-1], staves[1:], strict=True)
    ]
    through = np.flatnonzero(np.min(spans, axis=0) >= _COVER)
    groups: list[list[int]] = []
    for x in through:
        if groups and x - groups[-1][1] <= _MIN_MEASURE * spacing:
            groups[-1][1] = int(x)
        else:
            groups.append([int(x), int(x)])
    start = min(s.x0 for s in staves) + spacing
    end = max(s.x1 for s in staves) - spacing
    half = shift // 2  # the dilation widened every line by this on each side
    bars = [(a + half, b - half) for a, b in groups]
    return [(a, b) for a, b in bars if b - a <= 2 * spacing and a > start and b < end]


@dataclass(frozen=True)
class WindowPlan:
    """How a staff is read: `spans`, the column ranges [x0, x1) of its windows, left to right,
    and `context`, the columns [x0, x1) of its first measure, put in front of every window but
    the first."""

    spans: tuple[tuple[int, int], ...]
    context: tuple[int, int]


def plan_windows(
    bars: Sequence[tuple[int, int]], start: int, end: int, height: int, max_ratio: float = MAX_RATIO
) -> WindowPlan:
    """The windows of a staff running from column `start` to `end` (its crop `height` rows):
    one window when it fits in `max_ratio`, else cut after barlines so that each window, the
    first measure in front of it (all but the first window), is at most `max_ratio * height`
    wide, or holds one measure where a single measure is wider."""
    limit = max_ratio * height
    cuts = [b + 1 for _, b in bars if start < b + 1 < end]
    if end - start <= limit or not cuts:
        return WindowPlan(spans=((start, end),), context=(start, end))
    context = (start, cuts[0])
    spans: list[tuple[int, int]] = []
    edges = [*cuts, end]
    left, index = start, 0
    while index < len(edges):
        extra = context[1] - context[0] if spans else 0
        right = index
        while right + 1 < len(edges) and extra + edges[right + 1] - left <= limit:
            right += 1
        spans.append((left, edges[right]))
        left, index = edges[right], right + 1
    return WindowPlan(spans=tuple(spans), context=context)


def window_images(crop: np.ndarray, plan: WindowPlan) -> list[np.ndarray]:
    """The images of a staff crop's windows, in the crop's own columns: the first as cut, each
    later one with the context (the staff's first measure) in front of it."""
    (x0, x1), rest = plan.spans[0], plan.spans[1:]
    context = crop[:, plan.context[0] : plan.context[1]]
    return [crop[:, x0:x1]] + [np.hstack([context, crop[:, a:b]]) for a, b in rest]


def join_windows(texts: Sequence[str]) -> str:
    """One staff's kern from its windows' kern, left to right: the first window whole, every
    later one from after its first barline (the copied first measure and the header before it
    are dropped; a window without a barline gives its music from its first note on). Where
    the spine count at the join differs, manipulators bridge it: all voices merged (`*v`),
    then split (`*^`) to the count the window continues with. One `*-` ends the staff."""
    from omrgemma.kern.parse import Kind, Parser

    out = _music(texts[0].splitlines())
    for text in texts[1:]:
        lines = _music(text.splitlines())
        parser = Parser()
        cut = None
        for index, line in enumerate(lines):
            record = parser.feed(line)
            if record.kind is Kind.BARLINE:
                cut = index + 1
                break
        if cut is None:  # no barline read: keep the music from the first note
            parser = Parser()
            cut = len(lines)
            for index, line in enumerate(lines):
                if parser.feed(line).kind is Kind.DATA:
                    cut = index
                    break
        width = parser.active_count
        have = _width(out)
        out += _bridge(have, width) + lines[cut:]
    return "\n".join([*out, "\t".join("*-" for _ in range(max(_width(out), 1)))]) + "\n"


def _music(lines: list[str]) -> list[str]:
    """The lines of one window's kern without its blank lines and `*-` terminators."""
    return [ln for ln in lines if ln.strip() and not all(f == "*-" for f in ln.split("\t"))]


def _width(lines: list[str]) -> int:
    """How many spines are active after `lines` (parsed as one kern file)."""
    from omrgemma.kern.parse import Parser

    parser = Parser()
    for line in lines:
        parser.feed(line)
    return parser.active_count


def _bridge(have: int, want: int) -> list[str]:
    """Manipulator lines taking `have` active spines to `want`."""
    if have == want or want == 0 or have == 0:
        return []
    lines = ["\t".join("*v" for _ in range(have))] if have > 1 else []
    for width in range(1, want):
        lines.append("\t".join(["*^"] + ["*"] * (width - 1)))
    return lines

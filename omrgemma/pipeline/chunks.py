"""Long systems read in pieces of a few measures, cut at their barlines, and put back together.

The staff model was trained on staves of 1-4 measures fitted into 64 x 512 pixels. A printed
system often holds 5-10 measures across the page, which the fit shrinks until a staff space is
three or four pixels. So `StaffReader` cuts a system with more than `most` measures (the
model's `piece_measures`, from its `inference.json`) at its barlines
(`omrgemma.pipeline.barlines.measure_ends`) into pieces of at most `most` measures:

    pieces = cut_system(gray, staves, ends, most=4)    # Piece(image, staves, measures)

The first piece keeps the clef, key and meter; the others start just after a barline. Each
staff of a later piece is read forced to begin with the header its first piece was read with
(`header`), since its own image shows no clef, and bounded to the piece's measure count
(`omrgemma.measure_budget`); `concatenate` joins a staff's readings: the first in full but for
its closing `*-` line, the later ones without the forced header, the last with its `*-`.

Session 8 had read wide staves in windows with the staff's first measure copied in front of
each, and found it worse; the model then padded each window towards the four measures it
trained on. The bound stops that. Measured with the stage-8 model (`benchmarks/pieces.py`,
`benchmarks/results/pieces.md`; SER % / note F1, each staff bounded by its barlines, whole
systems -> pieces of at most 4 -> at most 5): `grandstaff-like-dev` (64 systems) 48.5 / 0.129
-> 45.8 / 0.211 -> 45.6 / 0.199; `real-scans-dev` (200) 58.5 / 0.047 -> 60.7 / 0.050 -> 59.1 /
0.050; `camera-like-dev` (64, barlines seldom found) 58.2 / 0.077 -> 58.0 / 0.079 -> 58.2 /
0.077. The shipped model reads pieces of at most 5.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from omrgemma.image.layout import Staff
from omrgemma.recognizer import SystemResult

_AFTER = 0.5  # staff spacings kept after a piece's last barline (the barline itself stays)
_SKIP = 0.5  # staff spacings after a barline where the next piece starts (without it)
_HEADER = ("**", "*staff", "*clef", "*k[", "*M", "*met")  # lines a later piece begins with


@dataclass(frozen=True, kw_only=True)
class Piece:
    """A horizontal cut of a system image: its pixels, its staves (in its own pixels) and how
    many measures it holds (None: unknown)."""

    image: np.ndarray
    staves: list[Staff]
    measures: int | None


def piece_sizes(count: int, most: int) -> list[int]:
    """`count` measures in the fewest pieces of at most `most`, as even as possible (longer
    pieces first): 7, 3 -> [3, 2, 2]."""
    if count < 1 or most < 1:
        raise ValueError(f"piece_sizes needs count >= 1 and most >= 1, got {count}, {most}")
    pieces = -(-count // most)
    base, extra = divmod(count, pieces)
    return [base + 1] * extra + [base] * (pieces - extra)


def cut_system(
    gray: np.ndarray, staves: list[Staff], ends: Sequence[float], *, most: int | None
) -> list[Piece]:
    """The system image in pieces of at most `most` measures (`ends`: x where each measure
    ends; empty when unknown). One piece, the whole image, when it holds no more than `most`
    (or `most` is None, or the measures are unknown)."""
    count = len(ends) or None
    if most is None or count is None or count <= most:
        return [Piece(image=gray, staves=staves, measures=count)]
    width = gray.shape[1]
    spacing = float(np.mean([s.spacing for s in staves]))
    pieces, left, done = [], 0, 0
    for size in piece_sizes(count, most):
        done += size
        last = done == count
        right = width if last else min(width, round(ends[done - 1] + _AFTER * spacing))
        own = [shifted(staff, left, right, width) for staff in staves]
        pieces.append(Piece(image=np.ascontiguousarray(gray[:, left:right]), staves=own,
                            measures=size))  # fmt: skip
        left = round(ends[done - 1] + _SKIP * spacing)
    return pieces


def shifted(staff: Staff, left: int, right: int, width: int) -> Staff:
    """`staff` of an image `width` wide, in the pixels of its columns left:right (line rows are
    given at an image's middle column, so a slanted staff's move with it)."""
    drift = staff.slope * ((left + right) / 2 - width / 2)
    return replace(
        staff,
        top=staff.top + drift,
        bottom=staff.bottom + drift,
        line_ys=tuple(y + drift for y in staff.line_ys),
        x0=max(0.0, staff.x0 - left),
        x1=min(float(right - left), staff.x1 - left),
    )


def header(kern: str) -> str:
    """The opening lines of a one-staff reading that set clef, key and meter (`**kern`,
    `*staff`, `*clef`, `*k[`, `*M`, `*met`), up to its first other line; "" if none."""
    lines = []
    for line in kern.split("\n"):
        if "\t" in line or not line.startswith(_HEADER):
            break
        lines.append(line + "\n")
    return "".join(lines)


def concatenate(parts: Sequence[SystemResult], starts: Sequence[str]) -> SystemResult:
    """One staff's readings of consecutive pieces as one reading. `starts[k]`: the text
    reading k was forced to begin with ("" for the first), dropped with its tokens."""
    if len(parts) == 1:
        return parts[0]
    kept: list[tuple[SystemResult, int, int]] = []
    for index, (part, start) in enumerate(zip(parts, starts, strict=True)):
        first = _tokens_covering(part.pieces, start) if index else 0
        stop = len(part.pieces) if index == len(parts) - 1 else _body_end(part.pieces)
        kept.append((part, first, max(first, stop)))
    pieces = tuple(p for part, a, b in kept for p in part.pieces[a:b])
    logprobs = [np.asarray(part.token_logprobs, np.float32)[a:b] for part, a, b in kept]
    return SystemResult(
        kern="".join(pieces),
        tokens=tuple(t for part, a, b in kept for t in part.tokens[a:b]),
        token_logprobs=np.concatenate(logprobs),
        pieces=pieces,
        finished=all(part.finished for part in parts),
        repeated=any(part.repeated for part in parts),
    )


def _tokens_covering(pieces: Sequence[str], text: str) -> int:
    """How many leading pieces spell `text` (a forced start is whole tokens)."""
    length = 0
    for count, piece in enumerate(pieces):
        if length >= len(text):
            return count
        length += len(piece)
    return len(pieces)


def _body_end(pieces: Sequence[str]) -> int:
    """Index of the first token of the reading's `*-` line (after the last newline before it),
    or of the token after its last newline when it has none (cut at the budget)."""
    line_start, last_newline = True, 0
    for index, piece in enumerate(pieces):
        if line_start and piece.startswith("*-"):
            return index
        line_start = piece.endswith("\n")
        if line_start:
            last_newline = index + 1
    return last_newline


__all__ = ["Piece", "concatenate", "cut_system", "header", "piece_sizes", "shifted"]

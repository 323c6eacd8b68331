"""Make recognised kern timeable: re-grid misaligned voices, end short spines with rests.

    lines, origin, fixes = retime(lines, origin)   # fixes: [(input line, code, description)]

A Humdrum file is a grid: every note on a line starts at the same moment. A recogniser that
writes two voices in one staff (or a join of staves that disagree) breaks the grid in two
ways, and either one makes humlib's rhythm analysis, and so converter21, give up on the whole
file (every note at onset -1: nothing reaches MusicXML or MIDI in its place):

- `overlap`: a voice's note sits on a line where another voice's clock says a different time
  (the lower voice's 4th eighth written beside the upper voice's 3rd). Each such measure is
  re-gridded: every spine keeps its tokens in order, timed by its own durations, and the lines
  are rebuilt by onset (notes that start together share a line, nulls elsewhere). Only measures
  whose notes form one block of data lines with a fixed layout are re-gridded; one with spine
  manipulators or comments among its notes, or a token without a duration, is left alone.
- `spine-durations`: a spine ends before the measure's longest one (a note read short). It gets
  a rest of the difference where its last note ends: on the line starting there when its field
  is null, else on a new line.

Both repairs keep every token the recogniser wrote. `origin` maps each line to its input line
number and is kept in step (a new line takes the number of the line it stands before).
"""

from __future__ import annotations

from fractions import Fraction

from omrgemma.kern.parse import Kind, Parser
from omrgemma.kern.tokens import parse_token

Found = tuple[int, str, str]  # (input line, code, description)
_MAX_PASSES = 256  # re-parses per text at most (one per measure re-gridded or rest added)


def retime(lines: list[str], origin: list[int]) -> tuple[list[str], list[int], list[Found]]:
    """Re-grid the measures with `overlap`, then pad short spines (see the module doc)."""
    lines, origin, found = list(lines), list(origin), []
    skipped: set[tuple[int, str]] = set()  # (measure, spine or "grid") left alone
    for _ in range(_MAX_PASSES):
        parser, onsets = _parsed(lines)  # one parse per pass serves both repairs
        change = _regrid(parser, skipped) or _next_pad(parser, onsets, skipped)
        if change is None:
            break
        first, stop, new, code, note = change
        line = origin[min(first, len(origin) - 1)]
        lines[first:stop] = new
        origin[first:stop] = [line] * len(new)
        found.append((line, code, note))
    return lines, origin, found


def rest_token(quarters: Fraction) -> str | None:
    """A kern rest lasting `quarters` (`4r`, `8.r`, `12r`), or None if one recip cannot say it."""
    for dots in (0, 1, 2):
        base = quarters / (2 - Fraction(1, 2**dots))
        recip = Fraction(4) / base
        if recip.denominator == 1 and recip.numerator > 0:
            return f"{recip.numerator}{'.' * dots}r"
        if recip.numerator == 1 and base.denominator == 1:  # longer than a whole note: 0, 00
            zeros = {Fraction(8): "0", Fraction(16): "00"}.get(base)
            if zeros:
                return f"{zeros}{'.' * dots}r"
    return None


def _parsed(lines: list[str]) -> tuple[Parser, list[Fraction | None]]:
    """The parser after every line, and each line's onset when it starts a note (else None)."""
    parser = Parser()
    onsets: list[Fraction | None] = []
    for text in lines:
        record = parser.feed(text)
        starts = record.kind is Kind.DATA and any(
            record.fields[i] != "." for i in record.kern_indices()
        )
        onsets.append(parser.time if starts else None)
    parser.finish()
    return parser, onsets


# --- overlap: re-grid a measure -------------------------------------------------------------


def _regrid(parser: Parser, skipped: set[tuple[int, str]]):
    """(first, stop, new lines, code, note) re-gridding the first measure with an overlap."""
    overlaps = sorted(p.line for p in parser.problems if p.code == "overlap")
    for measure in parser.measures:
        if (measure.index, "grid") in skipped:
            continue
        lines_in = range(measure.start + 1, measure.stop + 1)  # records are 1-based lines
        if not any(line in lines_in for line in overlaps):
            continue
        records = parser.records[measure.start : measure.stop]
        block = [i for i, r in enumerate(records) if r.kind is Kind.DATA]
        new = _grid(records[block[0] : block[-1] + 1]) if block else None
        if new is None:
            skipped.add((measure.index, "grid"))
            continue
        first, stop = measure.start + block[0], measure.start + block[-1] + 1
        note = f"voices on one line started at different times: {stop - first} lines re-gridded"
        return first, stop, new, "overlap", note
    return None


def _grid(records) -> list[str] | None:
    """The block's lines rebuilt by onset from each column's own durations, or None if that
    cannot be done safely (spine manipulators, a layout change, non-kern spines, an unknown
    duration, a column whose first note was held over the barline).

    A tandem interpretation (`*clefG2`) or local comment keeps its place in its column: it goes
    on a line of its kind just before that column's next token, or after the block's last line.
    """
    width = len(records[0].fields)
    for record in records:
        if len(record.fields) != width or len(record.kern_indices()) != width:
            return None
        if record.kind not in (Kind.DATA, Kind.INTERPRETATION, Kind.LOCAL_COMMENT):
            return None
        if record.is_manipulator or record.is_exclusive:
            return None
    first_data = next(r for r in records if r.kind is Kind.DATA)
    if any(f == "." for f in first_data.fields):
        return None  # a note held over the barline: its onset here is not 0
    notes: dict[tuple[Fraction, int], list[str]] = {}
    before: dict[tuple[Fraction, int], list[list[tuple[Kind, str]]]] = {}
    after: list[list[tuple[Kind, str]]] = [[] for _ in range(width)]
    for column in range(width):
        onset, graces, pending = Fraction(0), 0, []
        for record in records:
            text = record.fields[column]
            if record.kind is not Kind.DATA:
                if text not in ("*", "!"):
                    pending.append((record.kind, text))
                continue
            if text == ".":
                continue
            duration = parse_token(text).duration
            if duration is None:
                return None
            # grace notes go on their own lines, before the note they lead to
            slot = (onset, graces - 64) if duration == 0 else (onset, 0)
            graces = graces + 1 if duration == 0 else 0
            row = notes.setdefault(slot, ["."] * width)
            if row[column] != ".":
                return None
            row[column] = text
            if pending:
                before.setdefault(slot, [[] for _ in range(width)])[column] = pending
                pending = []
            onset += duration
        after[column] = pending
    lines: list[str] = []
    for slot in sorted(notes):
        lines += _marks(before.get(slot), width)
        lines.append("\t".join(notes[slot]))
    return lines + _marks(after, width)


def _marks(columns: list[list[tuple[Kind, str]]] | None, width: int) -> list[str]:
    """Interpretation and comment lines holding each column's marks in order, nulls elsewhere."""
    lines: list[str] = []
    for kind, null in ((Kind.LOCAL_COMMENT, "!"), (Kind.INTERPRETATION, "*")):
        mine = [[t for k, t in column if k is kind] for column in columns or [[]] * width]
        for i in range(max((len(m) for m in mine), default=0)):
            lines.append("\t".join(m[i] if i < len(m) else null for m in mine))
    return lines


# --- spine-durations: end a short spine with a rest ------------------------------------------


def _next_pad(parser: Parser, onsets: list[Fraction | None], skipped: set[tuple[int, str]]):
    """(first, stop, new lines, code, note) adding the first rest a short spine needs."""
    for measure in parser.measures:
        known = {s: d for s, d in measure.durations.items() if d is not None}
        if len(set(known.values())) < 2:
            continue
        longest = max(known.values())
        for spine, ends in known.items():
            if ends == longest or (measure.index, spine) in skipped:
                continue
            rest = _first_rest(longest - ends)
            place = None if rest is None else _place(parser, onsets, measure, spine, ends, rest)
            if place is None:
                skipped.add((measure.index, spine))
                continue
            index, fields, replace = place
            note = (
                f"spine {spine} ended {_quarters(longest - ends)} quarters before the measure's "
                f"other spines: added {rest!r}"
            )
            return index, index + replace, ["\t".join(fields)], "spine-durations", note
    return None


def _first_rest(quarters: Fraction) -> str | None:
    """A rest lasting `quarters`, else the longest power-of-two rest shorter (the next pass
    pads the remainder: 5/4 quarters -> `4r`, then `16r`)."""
    if (whole := rest_token(quarters)) is not None:
        return whole
    power = Fraction(16)
    while power > quarters and power >= Fraction(1, 64):
        power /= 2
    return rest_token(power) if power >= Fraction(1, 64) else None


def _quarters(value: Fraction) -> str:
    return str(value.numerator) if value.denominator == 1 else str(value)


def _place(parser, onsets, measure, spine: str, ends: Fraction, rest: str):
    """(line index, fields, replace?) putting `rest` in `spine`: on the measure's data line
    that starts at `ends` (the spine null there), else on a new line before the first later
    one, else after the last; None when the spine is not on that line (split or merged)."""
    records = parser.records
    span = range(measure.start, measure.stop)
    later = [i for i in span if onsets[i] is not None and onsets[i] >= ends]
    timed = [i for i in span if onsets[i] is not None]
    if later:
        index, replace = later[0], onsets[later[0]] == ends
    elif timed:
        index, replace = timed[-1] + 1, False
    else:
        return None
    record = records[later[0] if later else timed[-1]]
    if spine not in record.spines:
        return None
    column = record.spines.index(spine)
    if replace:
        if record.fields[column] != ".":
            return None
        fields = list(record.fields)
    else:
        fields = ["."] * len(record.fields)
    fields[column] = rest
    return index, fields, int(replace)

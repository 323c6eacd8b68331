"""Make recognised kern timeable: re-grid misaligned voices, end short spines with rests.

    lines, origin, fixes = retime(lines, origin)   # fixes: [(input line, code, description)]

A Humdrum file is a grid: every note on a line starts at the same moment. A recogniser that
writes two voices in one staff (or a join of staves that disagree) breaks the grid in two
ways, and either one makes humlib's rhythm analysis, and so converter21, give up on the whole
file (every note at onset -1: nothing reaches MusicXML or MIDI in its place):

- `overlap`: a voice's note sits on a line where another voice's clock says a different time
  (the lower voice's 4th eighth written beside the upper voice's 3rd). Each such measure is
  re-gridded: every spine keeps its tokens in order, timed by its own durations, and the lines
  are rebuilt by onset (notes that start together share a line, nulls elsewhere). A spine
  split or merge among the notes stays where its voices' clocks put it. A measure with a token
  without a duration, or a manipulator other than `*^`/`*v`, is left alone.
- `spine-durations`: a spine ends before the measure's longest one (a note read short). It gets
  a rest of the difference where its last note ends: on the line starting there when its field
  is null, else on a new line.

Both repairs keep every token the recogniser wrote. `origin` maps each line to its input line
number and is kept in step (a new line takes the number of the line it stands before).
"""

from __future__ import annotations

from dataclasses import dataclass, field
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


Marks = list[tuple[Kind, str]]  # one column's interpretations and comments, in order


@dataclass
class _Epoch:
    """A stretch of the measure with one spine layout: from `start` (quarters) on, `voices`
    (ids, left to right), opened by the manipulator line `opening` (None for the first)."""

    start: Fraction
    voices: list[int]
    opening: str | None
    after: dict[int, Marks] = field(default_factory=dict)  # marks of voices ending with it


def _grid(records) -> list[str] | None:
    """The block's lines rebuilt by onset from each voice's own durations, or None if that
    cannot be done safely (non-kern spines, an unknown duration, a voice whose first note was
    held over the barline, a manipulator other than a split or merge, or one whose voices
    reach it at different times).

    Spine splits (`*^`) and merges (`*v`) among the notes keep their order, each at the time
    its voices reach it: a voice that goes on through it places its notes by time, before or
    after it. Voices reaching a merge at different times (one read short) are padded with a
    rest to the longest. A tandem interpretation (`*clefG2`) or local comment keeps its place
    in its voice: on a line of its kind just before that voice's next note, or at the end of
    the voice's stretch (before the manipulator that ends it, or after the block's last line).
    """
    if any(f == "." for f in records[0].fields):
        return None  # a note held over the barline: its onset here is not 0
    voices = list(range(len(records[0].fields)))
    clock = dict.fromkeys(voices, Fraction(0))
    graces = dict.fromkeys(voices, 0)
    pending: dict[int, Marks] = {v: [] for v in voices}
    epochs = [_Epoch(Fraction(0), list(voices), None)]
    events: list[tuple[Fraction, int, int, str, Marks]] = []  # onset, grace slot, voice, ...
    for record in records:
        width = len(voices)
        if len(record.fields) != width or len(record.kern_indices()) != width:
            return None
        if record.kind not in (Kind.DATA, Kind.INTERPRETATION, Kind.LOCAL_COMMENT):
            return None
        if record.is_exclusive:
            return None
        if record.is_manipulator:
            changed = _manipulate(record.fields, voices, clock, events)
            if changed is None or changed[1] < epochs[-1].start:
                return None
            voices, start = changed
            ended = {v for v in epochs[-1].voices if v not in voices}
            epochs[-1].after = {v: pending.pop(v) for v in ended if pending.get(v)}
            epochs.append(_Epoch(start, list(voices), "\t".join(record.fields)))
            for v in voices:
                pending.setdefault(v, [])
                graces.setdefault(v, 0)
            continue
        for v, text in zip(voices, record.fields, strict=True):
            if record.kind is not Kind.DATA:
                if text not in ("*", "!"):
                    pending[v].append((record.kind, text))
                continue
            if text == ".":
                continue
            duration = parse_token(text).duration
            if duration is None:
                return None
            # grace notes go on their own lines, before the note they lead to
            slot = graces[v] - 64 if duration == 0 else 0
            graces[v] = graces[v] + 1 if duration == 0 else 0
            events.append((clock[v], slot, v, text, pending[v]))
            pending[v] = []
            clock[v] += duration
    epochs[-1].after = {v: marks for v, marks in pending.items() if marks and v in voices}
    return _lines(epochs, events)


def _manipulate(fields, voices, clock, events) -> tuple[list[int], Fraction] | None:
    """The voices after a manipulator line and the time it stands at; None for a manipulator
    other than `*^` / `*v`, or voices reaching it at different times that no rest can pad.
    Voices merged short of the others get a rest (added to `events`)."""
    after: list[int] = []
    times: set[Fraction] = set()
    next_id = max(clock) + 1
    i = 0
    while i < len(fields):
        v, text = voices[i], fields[i]
        if text == "*":
            after.append(v)
        elif text == "*^":
            for _ in range(2):
                clock[next_id] = clock[v]
                after.append(next_id)
                next_id += 1
            times.add(clock[v])
        elif text == "*v":
            stop = i
            while stop < len(fields) and fields[stop] == "*v":
                stop += 1
            run = voices[i:stop]
            if len(run) < 2:
                return None
            ends = max(clock[u] for u in run)
            for u in run:
                if clock[u] < ends:
                    rest = rest_token(ends - clock[u])
                    if rest is None:
                        return None
                    events.append((clock[u], 0, u, rest, []))
            clock[next_id] = ends
            after.append(next_id)
            next_id += 1
            times.add(ends)
            i += len(run)
            continue
        else:
            return None
        i += 1
    if len(times) != 1:
        return None
    return after, times.pop()


def _lines(epochs: list[_Epoch], events) -> list[str] | None:
    """The grid: each epoch's notes by onset, its manipulator line before it."""
    placed: dict[int, dict[tuple[Fraction, int], list[tuple[int, str, Marks]]]] = {}
    for onset, slot, v, text, marks in events:
        index = max(
            (i for i, e in enumerate(epochs) if e.start <= onset and v in e.voices), default=None
        )
        if index is None or (index + 1 < len(epochs) and onset >= epochs[index + 1].start):
            return None  # the voice had ended by then
        placed.setdefault(index, {}).setdefault((onset, slot), []).append((v, text, marks))
    lines: list[str] = []
    for index, epoch in enumerate(epochs):
        if index:
            before = epochs[index - 1]
            lines += _marks([before.after.get(v, []) for v in before.voices])
            lines.append(epoch.opening)
        column = {v: i for i, v in enumerate(epoch.voices)}
        width = len(epoch.voices)
        for key in sorted(placed.get(index, {})):
            row, marks_before = ["."] * width, [[] for _ in range(width)]
            for v, text, marks in placed[index][key]:
                if row[column[v]] != ".":
                    return None
                row[column[v]] = text
                marks_before[column[v]] = marks
            lines += _marks(marks_before)
            lines.append("\t".join(row))
    last = epochs[-1]
    return lines + _marks([last.after.get(v, []) for v in last.voices])


def _marks(columns: list[Marks]) -> list[str]:
    """Interpretation and comment lines holding each column's marks in order, nulls elsewhere."""
    lines: list[str] = []
    for kind, null in ((Kind.LOCAL_COMMENT, "!"), (Kind.INTERPRETATION, "*")):
        mine = [[t for k, t in column if k is kind] for column in columns]
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

"""Join the kern of each staff of a system into one multi-spine system, measure by measure.

A staff-level model reads one staff at a time; a piano system then comes back as two
single-staff files. `join_staves` makes them one system in Humdrum order:

    upper = "**kern\\n*clefG2\\n*M2/4\\n4e\\n4g\\n=\\n2c\\n=\\n*-\\n"
    lower = "**kern\\n*clefF4\\n*M2/4\\n2C\\n=\\n2G\\n=\\n*-\\n"
    joined = join_staves([upper, lower])     # staves top to bottom, as on the page
    joined.text                              # **kern  **kern  (lowest staff first, as the
                                             # piano corpora write it)

How the staves are lined up:
- each staff is read with `omrgemma.kern.parse.Parser`, which times every data line (quarters
  since the barline); global comments, reference records and null data lines are dropped, and
  `*staffN` is renumbered to the staff's place on the page (1 = top);
- its header (every line before the first data or barline) is joined line by line with the other
  staves' headers, so `**kern` meets `**kern`, the clef line the clef line, and so on;
- then measure k of every staff is joined with measure k of the others (a measure is the lines
  up to a barline, holding data; an opening barline before any data is kept as such, and a
  barline that closes no data is dropped). Within a measure the lines are merged by onset:
  notes that start together share a line, a staff with nothing new at a line gets null tokens
  (`.`, `*`, `!`), interpretations and comments go just before the staff's next note, grace
  notes before the notes they lead to;
- the barline after measure k takes each staff's own barline token (a staff without one there
  gets another staff's token), and one `*-` line ends the system.

When the staves disagree on the number of measures, the shorter ones are padded at the end with
rests lasting what the other staves' measure lasts (one rest per voice, split into several when
no single duration fits), and a `staff-measures` `Problem` says which staff and where. When they
disagree on how long measure k lasts (one staff read a quarter too few), the shorter staves'
measure ends with rests up to the longest one's end and a `staff-durations` warning says where:
otherwise the barline would fall while another staff's note still sounds, and no Humdrum or
music21 reader could time the system at all (every note of it would be lost). A system with one
staff comes back as it was.

Pure Python on text: no music21, no verovio.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction

from omrgemma.kern.parse import Kind, Parser
from omrgemma.kern.problems import Problem, error, warning

PADDED = "staff-measures"
SHORT = "staff-durations"
_NULL = {Kind.DATA: ".", Kind.INTERPRETATION: "*", Kind.LOCAL_COMMENT: "!"}
_AFTER_ALL = Fraction(10**9)  # the onset key of lines after a measure's last note
_LINE_KINDS = (Kind.DATA, Kind.INTERPRETATION, Kind.LOCAL_COMMENT)
_STAFF = re.compile(r"\*staff\d+$")


@dataclass(frozen=True, kw_only=True)
class JoinedSystem:
    """The joined kern (`text`), how many measures each staff had (top to bottom) and the
    problems found (`staff-measures`: a staff padded with rests; lines are in `text`)."""

    text: str
    measures: tuple[int, ...]
    problems: tuple[Problem, ...] = ()


@dataclass(frozen=True, slots=True)
class _Line:
    kind: Kind
    fields: tuple[str, ...]
    width_after: int  # the staff's spine count after this line (manipulators change it)
    onset: Fraction | None = None  # data lines: quarters since the barline
    grace: bool = False


@dataclass(slots=True)
class _Measure:
    lines: list[_Line] = field(default_factory=list)
    barline: tuple[str, ...] | None = None  # the closing barline's fields
    has_data: bool = False
    duration: Fraction | None = None  # when the staff's last note ends


@dataclass(slots=True)
class _Staff:
    header: list[_Line]
    opening: tuple[str, ...] | None  # a barline before the first data
    measures: list[_Measure]
    trailing: list[_Line]  # lines after the last note (before `*-`)
    meter: Fraction | None  # the first meter stated


def join_staves(staves: Sequence[str]) -> JoinedSystem:
    """One system from the kern of each of its staves, given top to bottom (see module doc)."""
    if len(staves) == 1:
        return JoinedSystem(text=staves[0], measures=(len(_read(staves[0]).measures),))
    read = [_read(text, staff=number) for number, text in enumerate(staves, 1)]
    order = list(range(len(read)))[::-1]  # Humdrum order: the lowest staff is the first spine
    spines = [read[i] for i in order]
    widths = [0] * len(spines)
    out: list[str] = []
    out += _merge(_aligned_headers([s.header for s in spines]), widths)
    if any(s.opening is not None for s in spines):
        out.append(_barline([s.opening for s in spines], widths))
    total = max(len(s.measures) for s in spines)
    first_padded: dict[int, int] = {}  # staff (spine order) -> joined line of its first rest
    warnings: list[Problem] = []
    for k in range(total):
        padded = [j for j, s in enumerate(spines) if k >= len(s.measures)]
        duration = _measure_duration([s.measures[k] for s in spines if k < len(s.measures)])
        streams = []
        short: list[tuple[int, Fraction]] = []  # (staff in spine order, its measure's length)
        for j, staff in enumerate(spines):
            if j in padded:
                meter = staff.meter or next((s.meter for s in spines if s.meter), None)
                streams.append(_rests(duration or meter or Fraction(4), widths[j]))
                first_padded.setdefault(j, len(out) + 1)
                continue
            measure = staff.measures[k]
            lines = measure.lines
            if duration and measure.duration and measure.duration < duration:
                width = lines[-1].width_after if lines else max(widths[j], 1)
                rests = _rests(duration - measure.duration, width, start=measure.duration)
                lines = lines + rests
                short.append((j, measure.duration))
            streams.append(lines)
        out += _merge(streams, widths)
        for j, length in sorted(short, key=lambda item: order[item[0]]):
            message = _short_message(order[j] + 1, len(spines), k + 1, length, duration)
            warnings.append(warning(len(out) + 1, SHORT, message))
        bars = [s.measures[k].barline if k < len(s.measures) else None for s in spines]
        if any(b is not None for b in bars):
            out.append(_barline(bars, widths))
    problems = []
    for j, line in sorted(first_padded.items(), key=lambda item: order[item[0]]):
        message = _padding_message(order[j] + 1, len(spines), len(spines[j].measures), total)
        problems.append(error(line, PADDED, message))
    problems += warnings
    out += _merge([s.trailing for s in spines], widths)
    out.append("\t".join("*-" for j in range(len(spines)) for _ in range(widths[j] or 1)))
    return JoinedSystem(
        text="\n".join(out) + "\n",
        measures=tuple(len(s.measures) for s in read),
        problems=tuple(problems),
    )


# Header interpretations by kind, in the order the corpora write them: a staff that lacks one
# (a model that left out `*staff1` or `*met`) gets a null interpretation there, so each line
# of the joined header holds one kind of interpretation (clef beside clef, key beside key).
_HEADER_ORDER = (
    re.compile(r"\*\*"), re.compile(r"\*staff"), re.compile(r"\*I"), re.compile(r"\*clef"),
    re.compile(r"\*k\["), re.compile(r"\*[A-Ga-g][#-]?:"), re.compile(r"\*M\d"),
    re.compile(r"\*met\("),
)  # fmt: skip


def _header_kind(line: _Line) -> int | None:
    """The slot of a one-spine header line in `_HEADER_ORDER`, None for anything else."""
    if line.kind is not Kind.INTERPRETATION or len(line.fields) != 1 or line.width_after != 1:
        return None
    return next((i for i, p in enumerate(_HEADER_ORDER) if p.match(line.fields[0])), None)


def _aligned_headers(headers: list[list[_Line]]) -> list[list[_Line]]:
    """The staves' header lines slotted by kind when every header line is a one-spine
    interpretation of a known kind (the usual case); otherwise unchanged (paired by index)."""
    kinds = [[_header_kind(line) for line in header] for header in headers]
    if any(k is None for staff in kinds for k in staff):
        return headers
    if any(staff != sorted(staff) for staff in kinds):
        return headers
    out: list[list[_Line]] = [[] for _ in headers]
    for slot in range(len(_HEADER_ORDER)):
        rows = [[line for line, k in zip(h, ks, strict=True) if k == slot]
                for h, ks in zip(headers, kinds, strict=True)]  # fmt: skip
        for i in range(max(len(r) for r in rows)):
            for staff, row in enumerate(rows):
                out[staff].append(row[i] if i < len(row) else _NULL_HEADER)
    return out


_NULL_HEADER = _Line(kind=Kind.INTERPRETATION, fields=("*",), width_after=1)


def _padding_message(staff: int, staves: int, have: int, total: int) -> str:
    which = f"measure {total}" if have + 1 == total else f"measures {have + 1}-{total}"
    return (
        f"staff {staff} of {staves} (from the top) has {have} measure{'s' * (have != 1)}, "
        f"the system {total}: {which} of that staff {'is' if have + 1 == total else 'are'} rests"
    )


def _short_message(
    staff: int, staves: int, measure: int, length: Fraction, longest: Fraction | None
) -> str:
    return (
        f"measure {measure} of staff {staff} of {staves} (from the top) lasts {_quarters(length)} "
        f"quarters, the system's longest {_quarters(longest or length)}: ended with rests"
    )


def _quarters(value: Fraction) -> str:
    return str(value) if value.denominator != 1 else str(value.numerator)


def _read(text: str, *, staff: int = 1) -> _Staff:
    """One staff's lines, timed by the parser and cut into header, measures and trailing lines.

    A `*staffN` the model wrote (it saw one staff: always `*staff1`) becomes the staff's place
    on the page, `staff` (1 = top), as the piano corpora number them.
    """
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("!!")]
    if lines and not lines[0].startswith("**"):  # no exclusive interpretation: assume kern
        lines.insert(0, "\t".join("**kern" for _ in lines[0].split("\t")))
    if not lines:
        lines = ["**kern"]
    parser = Parser()
    header: list[_Line] = []
    units: list[_Measure] = [_Measure()]
    in_header = True
    for raw in lines:
        record = parser.feed(raw)
        if record.kind is Kind.BARLINE:
            in_header = False
            units[-1].barline = record.fields
            units.append(_Measure())
            continue
        if record.kind is Kind.DATA:
            in_header = False
            units[-1].has_data = True
            if record.is_null:
                continue  # starts nothing; the other staves' lines carry the time
        if record.kind not in _LINE_KINDS:
            continue
        if all(f == "*-" for f in record.fields):
            continue  # one terminator line is written for the whole system
        line = _Line(
            kind=record.kind,
            fields=tuple(f"*staff{staff}" if _STAFF.match(f) else f for f in record.fields),
            width_after=parser.active_count,
            onset=parser.time if record.kind is Kind.DATA else None,
            grace=record.kind is Kind.DATA and _is_grace(record),
        )
        (header if in_header else units[-1].lines).append(line)
    parser.finish()
    durations = [_ends(m) for m in parser.measures]
    opening = None
    if units[0].barline is not None and not units[0].has_data:  # only the header before it
        opening = units[0].barline
        units = units[1:]
    measures: list[_Measure] = []
    carried: list[_Line] = []
    for unit in units:
        if not unit.has_data:  # lines between two barlines with no note: keep them, not the bar
            carried += unit.lines
            continue
        unit.lines = carried + unit.lines
        carried = []
        measures.append(unit)
    trailing = carried
    if measures and measures[-1].barline is None:  # the last measure has no closing barline
        last = measures[-1].lines
        end = max((i for i, line in enumerate(last) if line.kind is Kind.DATA), default=-1) + 1
        measures[-1].lines, trailing = last[:end], last[end:] + trailing
    for measure, duration in zip(measures, durations, strict=False):
        measure.duration = duration
    meter = next(
        (m for parsed in parser.measures for m in parsed.meters.values() if m is not None), None
    )
    return _Staff(header=header, opening=opening, measures=measures, trailing=trailing, meter=meter)


def _ends(measure) -> Fraction | None:
    known = [d for d in measure.durations.values() if d is not None]
    return max(known) if known else None


def _is_grace(record) -> bool:
    tokens = [token for _, token in record.kern_tokens() if token.text != "."]
    return bool(tokens) and all(token.duration == 0 for token in tokens)


def _measure_duration(measures: list[_Measure]) -> Fraction | None:
    known = [m.duration for m in measures if m.duration]
    return max(known) if known else None


def _rests(duration: Fraction, width: int, *, start: Fraction = Fraction(0)) -> list[_Line]:
    """Rest lines lasting `duration` quarters in every one of `width` voices, from `start`."""
    lines, onset = [], start
    for part in _rest_durations(duration):
        token = _rest_token(part)
        lines.append(_Line(kind=Kind.DATA, fields=(token,) * max(width, 1),
                           width_after=max(width, 1), onset=onset))  # fmt: skip
        onset += part
    return lines


def _rest_durations(quarters: Fraction) -> list[Fraction]:
    """`quarters` as a few durations that each have one recip: itself, else powers of two."""
    if _recip(quarters) is not None:
        return [quarters]
    parts, left = [], quarters
    power = Fraction(16)
    while left > 0 and power >= Fraction(1, 64):
        if power <= left:
            parts.append(power)
            left -= power
        else:
            power /= 2
    if left > 0:
        parts.append(left)  # an odd remainder, written as `N%M`
    return parts


def _recip(quarters: Fraction) -> str | None:
    """The kern recip of a duration (3 -> "2.", 8 -> "0", 2/3 -> "6"), None if no single plain
    or dotted one fits."""
    for dots in (0, 1, 2):
        base = quarters / (2 - Fraction(1, 2**dots))
        whole = Fraction(4) / base
        if whole.denominator == 1:
            return f"{whole.numerator}{'.' * dots}"
        if whole in (Fraction(1, 2), Fraction(1, 4)):
            return ("0" if whole == Fraction(1, 2) else "00") + "." * dots
    return None


def _rest_token(quarters: Fraction) -> str:
    recip = _recip(quarters)
    if recip is None:  # `N%M` lasts 4 * M / N quarters: any duration
        ratio = Fraction(4) / quarters
        recip = f"{ratio.numerator}%{ratio.denominator}"
    return f"{recip}r"


def _key(stream: list[_Line], index: int) -> tuple[Fraction, int]:
    """Sort key of a stream's line: (onset, 0 for interpretations and comments, 1 grace, 2 notes).

    A line without an onset of its own goes just before the staff's next note (or after every
    note when none follows).
    """
    line = stream[index]
    if line.kind is Kind.DATA:
        return (line.onset or Fraction(0), 1 if line.grace else 2)
    following = next((s.onset for s in stream[index:] if s.kind is Kind.DATA), None)
    return (_AFTER_ALL if following is None else following, 0)


def _merge(streams: list[list[_Line]], widths: list[int]) -> list[str]:
    """Interleave the staves' lines by onset into joined lines; `widths` is updated in place."""
    at = [0] * len(streams)
    out: list[str] = []
    while True:
        heads = [(j, _key(s, at[j])) for j, s in enumerate(streams) if at[j] < len(s)]
        if not heads:
            return out
        first = min(key for _, key in heads)
        chosen = [j for j, key in heads if key == first]
        kind = streams[chosen[0]][at[chosen[0]]].kind
        chosen = [j for j in chosen if streams[j][at[j]].kind is kind]
        if kind is Kind.INTERPRETATION:
            # Two staves' `*v` on one line would touch and merge the staves' spines into one:
            # the first staff merges on this line, the others on the next ones.
            merging = [j for j in chosen if "*v" in streams[j][at[j]].fields]
            chosen = [j for j in chosen if j not in merging[1:]]
        fields: list[str] = []
        for j, stream in enumerate(streams):
            if j in chosen:
                line = stream[at[j]]
                fields += line.fields
                widths[j] = line.width_after
                at[j] += 1
            else:
                fields += [_NULL[kind]] * widths[j]
        out.append("\t".join(fields))


def _barline(bars: list[tuple[str, ...] | None], widths: list[int]) -> str:
    """One barline line: each staff's own tokens, another staff's where one has none."""
    default = next(b[0] for b in bars if b)
    fields: list[str] = []
    for bar, width in zip(bars, widths, strict=True):
        if bar is not None and len(bar) == width:
            fields += bar
        else:
            fields += [bar[0] if bar else default] * width
    return "\t".join(fields)


__all__ = ["PADDED", "SHORT", "JoinedSystem", "join_staves"]

"""Cut one movement of **kern into standalone per-system snippets.

Each snippet is complete kern that engraves as one system:

    **kern  **kern          one spine per kept track, in the movement's order
    *staff2 *staff1         the layout and state in force where the snippet starts:
    *clefF4 *clefG2         clef (`*clefG2` when the movement never states one: what verovio
    *k[b-]  *k[b-]          draws), key signature (`*k[]` when none), meter and meter sign
    *M3/4   *M3/4           (only when stated); then, for a track split into voices at the
    *^      *               start, the `*^` lines that re-create the split, and lines for
    ...                     state that differs between its voices (e.g. one voice under 8va)
    body                    data and barlines of the system, with the clef/key/meter changes,
                            ottavas and spine manipulators inside it
    *v      *v      *       merges back to one spine per track, then
    *-      *-              terminators

Kept in the body: data lines (lines whose kept fields are all `.` are dropped), barlines (measure
numbers kept; the metrics strip them), and interpretations that change what is drawn: clef, key
signature, meter, meter sign, ottava, and spine manipulators. Dropped: reference records, every
comment and layout line (`!!LO:`, `!LO:`), and other interpretations (`*MM`, `*>A`, `*f:`, `*I…`).
By default only `**kern` spines are kept (the model target is kern): `**dynam`, `**text`, `**fing`
and other spines are dropped, or kept with `keep=("**kern", "**dynam")`.

Ties that cross a system break are cut: the snippet keeps every tie that starts and ends inside
it and drops the dangling halves (see `_drop_dangling_ties`), so each snippet is valid kern.

Interpretation lines at the very start of a snippet (before its first data or barline) are folded
into its header, so a system that opens with a clef or key change starts with the new one, as the
print does.

Two ways to cut:
- `cut_at_breaks(text)`: at the edition's system breaks, `!!LO:LB` with `g=original` or `g=z` and
  `!!LO:PB` (for real scans). A mark just before a barline gives that barline to the earlier
  system, which ends with it as printed; marks before the first data are ignored.
- `cut_by_measures(text, rng, measures=(1, 8))`: chunks of N measures, N drawn from `rng` per
  chunk (GrandStaff-like renders and training). A pickup counts as a measure.

Spine tracking comes from `omrgemma.kern.parse` (each record's fields carry their spine id and
track). Movements the cutter cannot cut faithfully raise `CutError`: field-count errors, or a
track whose voices are not side by side.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from omrgemma.errors import KernError
from omrgemma.kern.parse import Kind, Record, parse
from omrgemma.kern.validate import tie_issues

BREAK_MARK = re.compile(r"!!LO:(?:LB:(?:.*:)?g=(?:original|z)\b|PB\b)")
_STATE_KINDS = ("staff", "clef", "key", "meter", "met", "ottava")
_TRACK_LEVEL = ("staff", "clef", "key", "meter", "met")  # written once per track in the header
_DEFAULTS = {"clef": "*clefG2", "key": "*k[]"}
_OTTAVA = re.compile(r"\*(8va|8ba|15ma|15ba)$")
_OTTAVA_END = re.compile(r"\*X(8va|8ba|15ma|15ba)$")


Voice = tuple[str, int, str]  # (spine id, track, exclusive interpretation)


class CutError(KernError):
    """A movement the cutter cannot cut into faithful snippets."""


@dataclass(frozen=True, kw_only=True)
class Snippet:
    """One system of a movement: standalone kern, and the movement lines it came from (1-based)."""

    index: int
    kern: str
    first_line: int
    last_line: int
    measures: int  # barlines closing a measure with data inside the snippet


def state_kind(token: str) -> str | None:
    """Which header state a tandem interpretation sets (`*clefF4` -> "clef"), or None."""
    if token.startswith("*staff"):
        return "staff"
    if token.startswith("*clef"):
        return "clef"
    if token.startswith("*k["):
        return "key"
    if re.match(r"\*M\d", token):
        return "meter"
    if token.startswith("*met("):
        return "met"
    if _OTTAVA.match(token) or _OTTAVA_END.match(token):
        return "ottava"
    return None


def _drawn(token: str) -> bool:
    """Interpretations kept in a snippet body: manipulators and what changes the engraving."""
    if token in ("*^", "*v", "*x", "*-"):
        return True
    return state_kind(token) not in (None, "staff")


@dataclass(slots=True)
class _Builder:
    header: list[str]
    body: list[str] = field(default_factory=list)
    layout: list[Voice] = field(default_factory=list)  # the spines alive after the body
    first_line: int = 0
    last_line: int = 0
    measures: int = 0
    data_since_bar: bool = False
    has_data: bool = False


class _Cutter:
    def __init__(self, text: str, *, keep: tuple[str, ...]):
        self.doc = parse(text)
        fatal = [
            p for p in self.doc.problems if p.code in ("field-count", "manipulator", "mixed-record")
        ]
        if fatal:
            raise CutError(f"line {fatal[0].line}: {fatal[0].message}")
        self.keep = keep
        self.state: dict[str, dict[str, str]] = {}  # spine id -> kind -> token

    def kept(self, record: Record) -> list[int]:
        return [i for i, kind in enumerate(record.exclusives) if kind in self.keep]

    def sync(self, record: Record) -> None:
        """Carry state over spine splits and merges: new ids inherit from parent or first child."""
        old = self.state
        new: dict[str, dict[str, str]] = {}
        for spine in record.spines:
            if spine in old:
                new[spine] = old[spine]
                continue
            source = spine
            while source and source not in old:
                source = source.rpartition(".")[0]
            if not source:
                source = next((s for s in old if s.startswith(spine + ".")), "")
            new[spine] = dict(old.get(source, {}))
        self.state = new

    def update(self, record: Record) -> None:
        for token, spine in zip(record.fields, record.spines, strict=False):
            kind = state_kind(token)
            if kind == "ottava" and _OTTAVA_END.match(token):
                self.state[spine].pop("ottava", None)
            elif kind is not None:
                self.state[spine][kind] = token

    def layout(self, record: Record) -> list[Voice]:
        return [
            (record.spines[i], record.tracks[i], record.exclusives[i]) for i in self.kept(record)
        ]

    def header(self, layout: list[Voice]) -> list[str]:
        """Exclusive, state and split lines that re-create `layout` with the state in force."""
        tracks: list[int] = []
        voices: dict[int, list[str]] = {}
        exclusive: dict[int, str] = {}
        for spine, track, kind in layout:
            exclusive[track] = kind
            if tracks and track != tracks[-1] and track in voices:
                raise CutError(f"the voices of track {track} are not side by side")
            if not tracks or track != tracks[-1]:
                tracks.append(track)
            voices.setdefault(track, []).append(spine)
        lines = ["\t".join(exclusive[t] for t in tracks)]
        written: dict[int, dict[str, str | None]] = {t: {} for t in tracks}
        for kind in _TRACK_LEVEL:
            row = []
            for track in tracks:
                value = self.state[voices[track][0]].get(kind)
                if value is None and exclusive[track] == "**kern":
                    value = _DEFAULTS.get(kind)
                written[track][kind] = value
                row.append(value or "*")
            if any(token != "*" for token in row):
                lines.append("\t".join(row))
        counts = {t: 1 for t in tracks}
        while any(counts[t] < len(voices[t]) for t in tracks):
            row = []
            for track in tracks:
                row += ["*"] * (counts[track] - 1)
                row.append("*^" if counts[track] < len(voices[track]) else "*")
            lines.append("\t".join(row))
            counts = {t: counts[t] + (counts[t] < len(voices[t])) for t in tracks}
        for kind in _STATE_KINDS:
            row = []
            for track in tracks:
                for spine in voices[track]:
                    value = self.state[spine].get(kind)
                    differs = value is not None and value != written[track].get(kind)
                    row.append(value if differs else "*")
            if any(token != "*" for token in row):
                lines.append("\t".join(row))
        return lines

    def cut(
        self, starts_new: Iterable[int] | None, chunk_sizes: Iterator[int] | None
    ) -> list[Snippet]:
        """Snippets starting at record indices `starts_new`, or closing every `next(chunk_sizes)` bars."""
        breaks = set(starts_new or ())
        target = next(chunk_sizes) if chunk_sizes is not None else None
        snippets: list[Snippet] = []
        current: _Builder | None = None

        def close() -> None:
            nonlocal current
            if current is not None and current.has_data:
                snippets.append(self.finish(current, len(snippets)))
            current = None

        for index, record in enumerate(self.doc.records):
            if index in breaks:
                close()
            if record.is_global or record.kind in (Kind.LOCAL_COMMENT, Kind.EMPTY):
                continue
            self.sync(record)
            kept = self.kept(record)
            projected = [record.fields[i] for i in kept]
            if record.kind is Kind.INTERPRETATION:
                self.update(record)
                if current is None or record.is_exclusive:
                    continue
                tokens = [t if _drawn(t) else "*" for t in projected]
                if all(t == "*-" for t in tokens):
                    continue  # the movement's own terminators; each snippet gets its own
                if any(t != "*" for t in tokens):
                    current.body.append("\t".join(tokens))
                    current.layout = _after_manipulators(self.layout(record), tokens)
                    current.last_line = record.line
                continue
            if record.kind is Kind.DATA and all(t == "." for t in projected):
                continue
            if current is None:
                layout = self.layout(record)
                current = _Builder(header=self.header(layout), first_line=record.line)
            current.body.append("\t".join(projected))
            current.layout = self.layout(record)
            current.last_line = record.line
            if record.kind is Kind.DATA:
                current.has_data = current.data_since_bar = True
            elif current.data_since_bar:
                current.measures += 1
                current.data_since_bar = False
                if target is not None and current.measures >= target:
                    close()
                    target = next(chunk_sizes)
        close()
        return snippets

    def finish(self, built: _Builder, index: int) -> Snippet:
        tracks: list[int] = []
        width: dict[int, int] = {}
        for _, track, _ in built.layout:
            if not tracks or tracks[-1] != track:
                tracks.append(track)
            width[track] = width.get(track, 0) + 1
        ending = []
        for merging in tracks:  # one line per track: adjacent `*v`s of two tracks would merge them
            if width[merging] > 1:
                row: list[str] = []
                for track in tracks:
                    row += ["*v" if track == merging else "*"] * width[track]
                ending.append("\t".join(row))
                width[merging] = 1
        ending.append("\t".join(["*-"] * len(tracks)))
        kern = _drop_dangling_ties("\n".join(built.header + built.body + ending) + "\n")
        return Snippet(
            index=index,
            kern=kern,
            first_line=built.first_line,
            last_line=built.last_line,
            measures=built.measures + built.data_since_bar,
        )


def _drop_dangling_ties(kern: str) -> str:
    """Remove the half of a tie whose partner is in the neighbouring system.

    A tie over a system break leaves `[` (or `_`) at the end of one snippet and `]` (or `_`) at
    the start of the next; neither snippet is valid kern on its own. The tie start at the end is
    dropped (`[4c` -> `4c`, `4c_` -> `4c]`) and so is the tie end at the start (`4c]` -> `4c`,
    `4c_` -> `[4c`), keeping every tie inside the snippet.
    """
    lines = kern.split("\n")
    for issue in tie_issues(parse(kern)):
        fields = lines[issue.record].split("\t")
        notes = fields[issue.field].split(" ")
        note = notes[issue.note]
        if issue.kind == "unclosed":
            note = note.replace("[", "") if "[" in note else note.replace("_", "]")
        else:
            note = note.replace("]", "") if "]" in note else "[" + note.replace("_", "")
        notes[issue.note] = note
        fields[issue.field] = " ".join(notes)
        lines[issue.record] = "\t".join(fields)
    return "\n".join(lines)


def _after_manipulators(layout: list[Voice], tokens: list[str]) -> list[Voice]:
    """The spine layout after an interpretation line's manipulators (new ids are nominal)."""
    result: list[Voice] = []
    i = 0
    while i < len(tokens):
        spine, track, kind = voice = layout[i]
        token = tokens[i]
        if token == "*^":
            result += [(spine + ".1", track, kind), (spine + ".2", track, kind)]
        elif token == "*v":
            while i + 1 < len(tokens) and tokens[i + 1] == "*v":
                i += 1
            result.append(voice)
        elif token == "*x" and i + 1 < len(tokens) and tokens[i + 1] == "*x":
            result += [layout[i + 1], voice]
            i += 1
        elif token != "*-":
            result.append(voice)
        i += 1
    return result


def break_starts(text: str) -> list[int]:
    """Record indices where a new system starts, from the edition's `!!LO:LB`/`!!LO:PB` marks."""
    records = parse(text).records
    starts: list[int] = []
    seen_data = False
    for index, record in enumerate(records):
        if record.kind is Kind.DATA:
            seen_data = True
        if (
            not (record.kind is Kind.GLOBAL_COMMENT and BREAK_MARK.match(record.text))
            or not seen_data
        ):
            continue
        following = index + 1
        while following < len(records) and records[following].kind in (
            Kind.GLOBAL_COMMENT,
            Kind.LOCAL_COMMENT,
            Kind.REFERENCE,
        ):
            following += 1
        if following < len(records) and records[following].kind is Kind.BARLINE:
            following += 1  # the barline closes the earlier system
        else:
            following = index
        if not starts or starts[-1] != following:
            starts.append(following)
    return starts


def count_break_marks(text: str) -> int:
    """How many system-break marks the movement has after its first data (0: no marks)."""
    return len(break_starts(text))


def cut_at_breaks(text: str, *, keep: tuple[str, ...] = ("**kern",)) -> list[Snippet]:
    """One snippet per printed system, cut at the edition's system-break marks."""
    return _Cutter(text, keep=keep).cut(break_starts(text), None)


def cut_by_measures(
    text: str,
    rng: np.random.Generator,
    *,
    measures: tuple[int, int] = (1, 8),
    keep: tuple[str, ...] = ("**kern",),
) -> list[Snippet]:
    """Snippets of N measures each, N drawn uniformly from `measures` (inclusive) per snippet."""
    low, high = measures

    def sizes() -> Iterator[int]:
        while True:
            yield int(rng.integers(low, high + 1))

    return _Cutter(text, keep=keep).cut(None, sizes())


__all__ = [
    "CutError",
    "Snippet",
    "break_starts",
    "count_break_marks",
    "cut_at_breaks",
    "cut_by_measures",
]

"""Humdrum **kern text into records, spines and measures: pure Python, no music21, tolerant.

    doc = parse(text, path="piece.krn")
    doc.spine_types            # ('**kern', '**kern', '**dynam') from the first exclusive record
    doc.records[i]             # Record(line, kind, text, fields, spines, tracks, exclusives)
    doc.measures[j].durations  # {'1': Fraction(3), '2.1': Fraction(3), '2.2': Fraction(3)} quarters
    doc.problems               # structural Problems found while parsing (see validate.py for more)

Records. Every line is one `Record` of a `Kind`: `!!!KEY: value` reference, `!!` global comment,
`!` local comment (one per field), `*` interpretation (exclusive `**kern`, tandem `*clefG2`, and the
spine manipulators), `=` barline, data, or an empty line. Fielded records carry, per field, the
spine it belongs to (`spines`), the track (the column of the spine's exclusive interpretation,
1-based, as in Humdrum) and the exclusive type (`**kern`, `**dynam`, `**text`, ...).

Spine ids. A track's spine is named by its track number ("2"). `*^` splits spine S into "S.1" and
"S.2"; `*v` on adjacent spines merges them (into the parent when they are siblings, "2.1"+"2.2" ->
"2"); `*x` on two adjacent spines exchanges them; `*+` adds a new track to the right, whose
exclusive interpretation follows on the next record; `*-` terminates a spine. An interpretation
record's fields belong to the spines *before* its manipulators take effect.

Measures. A `Measure` runs from one barline (or the file start) to the next (or the end); those
without data records are omitted. `durations` gives, per **kern spine alive at its end, when that
spine's last note ends (quarter notes since the barline, `Fraction`), timed as humlib does:
a note starts when the one before it in its spine ends, and a line of null tokens moves no clock.
Split voices inherit their parent's end; after a merge the next note may start when any of
the merged voices ends; `*rscale` only changes how notes are displayed and is ignored. `meters` is the `*M` meter in force in each spine (a
`Fraction` of quarters, None before any meter).

The parser never raises on malformed kern: it records `Problem`s and carries on (a field-count
mismatch maps fields to spines from the left; extra fields get spine "?"). Use `files.read_kern`
for a file that may not be kern at all.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from omrgemma.kern.problems import Problem, error, warning
from omrgemma.kern.tokens import KernToken, parse_token

MANIPULATORS = frozenset({"*^", "*v", "*x", "*+", "*-"})
_METER = re.compile(r"\*M(\d+)/(\d+)$")
_BAR_NUMBER = re.compile(r"=+(\d+)")
UNKNOWN_SPINE = "?"


class Kind(enum.Enum):
    REFERENCE = "reference"  # !!!KEY: value (and !!!! universal records)
    GLOBAL_COMMENT = "global-comment"  # !! text
    LOCAL_COMMENT = "local-comment"  # ! in every field
    INTERPRETATION = "interpretation"  # ** exclusive, * tandem, spine manipulators
    BARLINE = "barline"  # = in every field
    DATA = "data"
    EMPTY = "empty"  # a blank line (not allowed in Humdrum)


_NULL_FIELD = {Kind.DATA: ".", Kind.INTERPRETATION: "*", Kind.LOCAL_COMMENT: "!"}


@dataclass(frozen=True, slots=True)
class Record:
    """One line. Global records (reference, global comment, empty) have no fields."""

    line: int  # 1-based
    kind: Kind
    text: str
    fields: tuple[str, ...] = ()
    spines: tuple[str, ...] = ()  # per field: spine id ("1", "2.1"), "?" for an extra field
    tracks: tuple[int, ...] = ()  # per field: 1-based track, 0 for an extra field
    exclusives: tuple[str, ...] = ()  # per field: "**kern", "**dynam", ... ("" if unknown)

    @property
    def is_global(self) -> bool:
        return not self.fields

    @property
    def is_null(self) -> bool:
        """A data, interpretation or local-comment record whose fields are all null (`.`, `*`, `!`)."""
        null = _NULL_FIELD.get(self.kind)
        return null is not None and all(f == null for f in self.fields)

    @property
    def is_manipulator(self) -> bool:
        return self.kind is Kind.INTERPRETATION and any(f in MANIPULATORS for f in self.fields)

    @property
    def is_exclusive(self) -> bool:
        return self.kind is Kind.INTERPRETATION and any(f.startswith("**") for f in self.fields)

    def kern_indices(self) -> list[int]:
        """Indices of the fields that belong to **kern spines."""
        return [i for i, kind in enumerate(self.exclusives) if kind == "**kern"]

    def kern_tokens(self) -> list[tuple[int, KernToken]]:
        """(field index, parsed token) for every **kern field of a data record."""
        if self.kind is not Kind.DATA:
            return []
        return [(i, parse_token(self.fields[i])) for i in self.kern_indices()]

    @property
    def reference(self) -> tuple[str, str] | None:
        """(key, value) of a `!!!KEY: value` record, else None."""
        if self.kind is not Kind.REFERENCE or ":" not in self.text:
            return None
        key, value = self.text.lstrip("!").split(":", 1)
        return key.strip(), value.strip()


@dataclass(frozen=True, slots=True)
class Measure:
    """The records between two barlines: `records[start:stop]` of the document."""

    index: int  # position in doc.measures
    number: int | None  # from the opening barline (`=12` -> 12); None if none or unnumbered
    start: int  # index of the first record after the opening barline
    stop: int  # index of the closing barline record, or len(records)
    opening: str | None  # opening barline token of the first **kern spine (None at file start)
    closing: str | None  # closing barline token (None at file end)
    durations: dict[str, Fraction | None] = field(hash=False)  # None: a token had no duration
    meters: dict[str, Fraction | None] = field(hash=False)


@dataclass(slots=True)
class KernDocument:
    """Parsed kern text. `records` covers every line; `problems` are structural ones only."""

    path: str | None
    records: list[Record]
    measures: list[Measure]
    problems: list[Problem]

    @property
    def spine_types(self) -> tuple[str, ...]:
        """Exclusive interpretations of the first exclusive record, e.g. ('**kern', '**kern')."""
        for record in self.records:
            if record.is_exclusive:
                return record.fields
        return ()

    @property
    def kern_spine_count(self) -> int:
        return sum(1 for kind in self.spine_types if kind == "**kern")

    @property
    def references(self) -> list[tuple[str, str]]:
        return [r.reference for r in self.records if r.reference is not None]

    def reference(self, key: str) -> str | None:
        return next((value for k, value in self.references if k == key), None)

    def measure_records(self, measure: Measure) -> list[Record]:
        return self.records[measure.start : measure.stop]

    def to_text(self) -> str:
        return "".join(record.text + "\n" for record in self.records)


@dataclass(slots=True)
class _Spine:
    id: str
    track: int
    exclusive: str
    elapsed: Fraction | None = Fraction(0)  # when its last note ends, quarters since the barline
    meter: Fraction | None = None
    # after `*v` merged voices that ended at different times: the latest end; the next note
    # may start anywhere from `elapsed` to `latest`
    latest: Fraction | None = None

    def copy(self, new_id: str) -> _Spine:
        return _Spine(new_id, self.track, self.exclusive, self.elapsed, self.meter, self.latest)

    def may_start(self, at: Fraction) -> bool:
        assert self.elapsed is not None
        return self.elapsed == at if self.latest is None else self.elapsed <= at <= self.latest


def _meter(token: str) -> Fraction | None:
    match = _METER.match(token)
    if match is None or int(match.group(2)) == 0:
        return None
    return Fraction(4 * int(match.group(1)), int(match.group(2)))


def _merged_id(ids: list[str]) -> str:
    parents = {i.rpartition(".")[0] for i in ids}
    if len(parents) == 1 and "" not in parents:
        return parents.pop()
    return ids[0]


class Parser:
    """Incremental parser: `feed` one line at a time, `finish` at the end.

    `active_count` is how many spines are active before the next line, which is what a line
    must have as fields; `repair.py` uses this to fix a file in one pass.
    """

    def __init__(self) -> None:
        self.line_count = 0
        self.records: list[Record] = []
        self.measures: list[Measure] = []
        self.problems: list[Problem] = []
        self.active: list[_Spine] = []
        self.next_track = 1
        self.seen_header = False
        self.opening: str | None = None
        self.number: int | None = None
        self.measure_start = 0
        self.measure_meters: dict[str, Fraction | None] | None = None
        self.time = Fraction(0)  # onset of the last timed data line, quarters since the barline
        # the last barline (its line, the measure it closed) until a note after it is timed
        self.barline: tuple[int, Measure] | None = None

    @property
    def active_count(self) -> int:
        return len(self.active)

    @property
    def expects_header(self) -> bool:
        """True before the first exclusive record and after every spine was terminated."""
        return not self.active

    def feed(self, text: str) -> Record:
        self.line_count += 1
        self.record(self.line_count, text.rstrip("\r\n"))
        return self.records[-1]

    def finish(self) -> None:
        self.close_measure(closing=None)
        if self.barline is not None:  # the last measure: nothing after it can cross its end
            line, measure = self.barline
            if len({d for d in measure.durations.values() if d is not None}) > 1:
                self.problems.append(error(line, "spine-durations", _disagreement(measure)))
        if self.active:
            self.problems.append(
                error(
                    self.line_count, "missing-terminator", "the file ends without `*-` terminators"
                )
            )
        if not self.seen_header:
            self.problems.append(error(0, "missing-header", "no `**kern` exclusive interpretation"))

    def record(self, line: int, text: str) -> None:
        if not text.strip():
            self.records.append(Record(line, Kind.EMPTY, text))
            self.problems.append(warning(line, "empty-line", "empty line"))
            return
        if text.startswith("!!"):
            kind = Kind.REFERENCE if text.startswith("!!!") else Kind.GLOBAL_COMMENT
            self.records.append(Record(line, kind, text))
            return
        fields = tuple(text.split("\t"))
        if not self.active:
            self.open_spines(line, fields)
        kind = field_kind(fields[0])
        if any(field_kind(f) is not kind for f in fields[1:]):
            self.problems.append(
                error(
                    line,
                    "mixed-record",
                    "fields of different kinds (data, `*`, `=`, `!`) on one line",
                )
            )
        if len(fields) != len(self.active):
            self.problems.append(
                error(
                    line,
                    "field-count",
                    f"{len(fields)} fields but {len(self.active)} spines are active",
                )
            )
        spines = self.active[: len(fields)]
        extra = len(fields) - len(spines)
        self.records.append(
            Record(
                line,
                kind,
                text,
                fields,
                tuple(s.id for s in spines) + (UNKNOWN_SPINE,) * extra,
                tuple(s.track for s in spines) + (0,) * extra,
                tuple(s.exclusive for s in spines) + ("",) * extra,
            )
        )
        if kind is Kind.DATA:
            self.data(fields)
        elif kind is Kind.BARLINE:
            self.close_measure(closing=fields[0])
            kern = [f for f, s in zip(fields, spines, strict=False) if s.exclusive == "**kern"]
            self.opening = (kern or list(fields))[0]
            number = _BAR_NUMBER.match(self.opening)
            self.number = int(number.group(1)) if number else None
        elif kind is Kind.INTERPRETATION:
            self.interpretation(line, fields)

    def open_spines(self, line: int, fields: tuple[str, ...]) -> None:
        """Start spines at an exclusive record, or guess `**kern` ones after reporting it missing."""
        if all(f.startswith("**") for f in fields):
            self.seen_header = True
            exclusives = fields
        else:
            if self.seen_header:
                message = "a record after every spine was terminated by `*-`"
                self.problems.append(error(line, "after-terminator", message))
            else:
                self.seen_header = True  # report once, then parse the rest as **kern
                message = "data before any `**kern` exclusive interpretation"
                self.problems.append(error(line, "missing-header", message))
            exclusives = ("**kern",) * len(fields)
        for exclusive in exclusives:
            self.active.append(_Spine(str(self.next_track), self.next_track, exclusive))
            self.next_track += 1

    def data(self, fields: tuple[str, ...]) -> None:
        """Time a data line the way humlib does: each spine's note starts when its last one ended.

        A line has no time of its own: every non-null **kern token on it starts when the note
        before it in its spine ends, and the tokens must agree (else `overlap`, then all start
        at the latest, so one wrong duration is reported once). A line of null tokens only (a
        `**dynam` entry, a layout comment's neighbour) starts nothing and so moves no clock;
        humlib gives it the next line's time.
        """
        if self.measure_meters is None:
            self.measure_meters = {s.id: s.meter for s in self.active if s.exclusive == "**kern"}
        starting = [
            (text, spine)
            for text, spine in zip(fields, self.active, strict=False)
            if spine.exclusive == "**kern" and text != "." and spine.elapsed is not None
        ]
        if not starting:
            return
        spines = [spine for _, spine in starting]
        if self.barline is not None:
            self.start_measure(spines)
        now = _onset(spines)
        if not all(spine.may_start(now) for spine in spines) or now < self.time:
            detail = ", ".join(f"spine {s.id} at {s.elapsed}" for s in spines)
            if now < self.time:
                detail += f"; the line before started at {self.time}"
            message = f"notes on one line start at different times ({detail} quarters)"
            self.problems.append(error(self.line_count, "overlap", message))
        now = max(now, self.time)
        for text, spine in starting:
            duration = parse_token(text).duration
            spine.elapsed = None if duration is None else now + duration
            spine.latest = None
        self.time = now

    def start_measure(self, starting: list[_Spine]) -> None:
        """At the first note after a barline, learn when the barline was and restart the clocks.

        The barline sits where the notes on this line start. A spine whose last note ended before
        that left a gap (`spine-durations`, reported at the barline); one whose note is still
        sounding and that has a null token here holds a note across the barline, which humlib
        accepts (early music transcribed with notes over pseudo-barlines), so it carries the rest
        of that note into the new measure.
        """
        assert self.barline is not None
        line, measure = self.barline
        self.barline = None
        timed = [s for s in self.active if s.exclusive == "**kern" and s.elapsed is not None]
        if not timed:
            return
        at = _onset(starting) if starting else min(s.elapsed for s in timed)  # type: ignore[type-var]
        gaps = [s for s in timed if _latest(s) < at]  # type: ignore[operator]
        if gaps or not all(spine.may_start(at) for spine in starting):
            self.problems.append(error(line, "spine-durations", _disagreement(measure)))
        for spine in timed:
            spine.elapsed = max(spine.elapsed - at, Fraction(0))  # type: ignore[operator]
            spine.latest = None if spine.latest is None or spine.latest <= at else spine.latest - at

    def close_measure(self, closing: str | None) -> None:
        stop = len(self.records) - (closing is not None)
        if self.measure_meters is not None:  # the measure had data
            self.measures.append(
                Measure(
                    index=len(self.measures),
                    number=self.number,
                    start=self.measure_start,
                    stop=stop,
                    opening=self.opening,
                    closing=closing,
                    durations={s.id: s.elapsed for s in self.active if s.exclusive == "**kern"},
                    meters=self.measure_meters,
                )
            )
            if self.barline is not None:  # a measure of null tokens only: nothing was timed
                self.start_measure([])
            self.barline = (self.line_count, self.measures[-1])
        self.time = Fraction(0)
        self.measure_start = stop + 1
        self.measure_meters = None

    def interpretation(self, line: int, fields: tuple[str, ...]) -> None:
        for text, spine in zip(fields, self.active, strict=False):
            if text.startswith("**"):
                spine.exclusive = text
            elif (meter := _meter(text)) is not None:
                spine.meter = meter
        if not any(f in MANIPULATORS for f in fields):
            return
        if len(fields) != len(self.active):
            self.problems.append(
                error(
                    line, "manipulator", "spine manipulators on a line with the wrong field count"
                )
            )
            return
        self.active = self.manipulate(line, fields)

    def manipulate(self, line: int, fields: tuple[str, ...]) -> list[_Spine]:
        result: list[_Spine] = []
        i = 0
        while i < len(fields):
            token, spine = fields[i], self.active[i]
            if token == "*^":
                result += [spine.copy(spine.id + ".1"), spine.copy(spine.id + ".2")]
            elif token == "*v":
                j = i
                while j + 1 < len(fields) and fields[j + 1] == "*v":
                    j += 1
                group = self.active[i : j + 1]
                if len(group) == 1:
                    self.problems.append(
                        error(
                            line,
                            "manipulator",
                            f"lone `*v` in field {i + 1}: nothing to merge with",
                        )
                    )
                    result.append(spine)
                else:
                    merged = spine.copy(_merged_id([s.id for s in group]))
                    known = [s.elapsed for s in group if s.elapsed is not None]
                    # voices that end at different times: the merged voice goes on when the
                    # first is free (Chopin op. 28/13) or the last (Erk 405), humlib takes both
                    latest = [_latest(s) for s in group if s.elapsed is not None]
                    merged.elapsed = min(known) if len(known) == len(group) else None
                    merged.latest = max(latest) if merged.elapsed is not None else None
                    if merged.latest == merged.elapsed:
                        merged.latest = None
                    result.append(merged)
                i = j
            elif token == "*x":
                if i + 1 < len(fields) and fields[i + 1] == "*x":
                    result += [self.active[i + 1], spine]
                    i += 1
                else:
                    self.problems.append(
                        error(
                            line, "manipulator", f"lone `*x` in field {i + 1}: nothing to exchange"
                        )
                    )
                    result.append(spine)
            elif token == "*+":
                result += [spine, _Spine(str(self.next_track), self.next_track, "")]
                self.next_track += 1
            elif token != "*-":
                result.append(spine)
            i += 1
        return result


def _latest(spine: _Spine) -> Fraction | None:
    return spine.elapsed if spine.latest is None else spine.latest


def _onset(spines: list[_Spine]) -> Fraction:
    """When notes starting in these spines start: where the spines not just merged say."""
    firm = [s.elapsed for s in spines if s.latest is None]
    return max(firm or [s.elapsed for s in spines])  # type: ignore[type-var]


def measure_label(measure: Measure) -> str:
    """How to name a measure to a person: its number, else its position."""
    if measure.number is not None:
        return f"measure {measure.number}"
    if measure.index == 0:
        return "the measure before the first barline"
    return f"measure #{measure.index + 1}"


def _disagreement(measure: Measure) -> str:
    detail = ", ".join(
        f"spine {spine}: {duration} quarters"
        for spine, duration in measure.durations.items()
        if duration is not None
    )
    return f"{measure_label(measure)}: spines disagree ({detail})"


def field_kind(field_text: str) -> Kind:
    """The record kind a single field implies (`*`, `=`, `!` or data)."""
    first = field_text[:1]
    if first == "*":
        return Kind.INTERPRETATION
    if first == "=":
        return Kind.BARLINE
    if first == "!":
        return Kind.LOCAL_COMMENT
    return Kind.DATA


def parse(text: str, path: str | Path | None = None) -> KernDocument:
    """Parse Humdrum text (any line endings; a leading BOM is ignored) into a `KernDocument`."""
    parser = Parser()
    for line in text.lstrip("\ufeff").splitlines():
        parser.feed(line)
    parser.finish()
    return KernDocument(
        path=None if path is None else str(path),
        records=parser.records,
        measures=parser.measures,
        problems=parser.problems,
    )

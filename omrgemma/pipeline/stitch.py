"""Stitch per-system **kern fragments into one score.

The model transcribes one system at a time; each answer is a small kern file of its own, with
its own exclusive record, clef/key/meter header and maybe a terminator. A score needs one of
each. `stitch` joins the systems of all pages in order:

- one spine layout for the whole score: the layout most systems agree on (the first on a tie);
  a system with another layout is mapped onto it track by track (spines of each type matched
  from the right, where kern puts the upper staff), a missing `**kern` spine is filled with one
  rest per measure, an extra one dropped, and each such repair is reported;
- the first system's header is kept; a later system's header tokens that repeat what is in
  force (clef, key signature, key, meter, ...) are dropped, changes stay as an interpretation
  record at the join. A meter change needs its measures' support: editions print the time
  signature on the first system only, so a model that always writes one guesses it on the
  others. A later system's new meter (with its `*met`) is kept only when more of its measures
  last what it says than what the meter in force says, and is otherwise dropped and reported;
- split spines still open at a system's end are merged (`*v`) so every join has the base layout;
- one barline at each join (the model may write the closing barline of a system, the opening
  one of the next, or both);
- system and page breaks are kept as the layout comments the corpora use
  (`!!LO:LB:g=original`, `!!LO:PB:g=original`), so the score can be engraved with the original
  line breaks and any line can be traced back to its system.

Pure Python on text; no music21, no verovio.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from fractions import Fraction

from omrgemma.kern.parse import KernDocument, Kind, Record, parse

LINE_BREAK = "!!LO:LB:g=original"
PAGE_BREAK = "!!LO:PB:g=original"
_BREAK = re.compile(r"!!LO:(LB|PB)\b")

# Header interpretations that stay in force until changed, by category.
_CATEGORIES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("clef", re.compile(r"\*clef")),
    ("keysig", re.compile(r"\*k\[")),
    ("key", re.compile(r"\*[A-Ga-g?][#-]*:")),
    ("meter", re.compile(r"\*M\d|\*M\*|\*MX")),
    ("mensur", re.compile(r"\*met\(")),
    ("staff", re.compile(r"\*staff")),
    ("instrument", re.compile(r"\*I")),
    ("part", re.compile(r"\*part")),
)


@dataclass(frozen=True, kw_only=True)
class SystemKern:
    """One system's transcription. `new_page`: the system is the first of a page (not the first)."""

    text: str
    new_page: bool = False


@dataclass(frozen=True, kw_only=True)
class StitchedScore:
    """The joined score.

    text: the whole score's kern. exclusives: its spine layout.
    first_measure: per system, the 1-based index of its first measure in the score
    (`len(parse(text).measures)` counts them); measures: per system, its number of measures.
    problems: what stitching had to repair, one sentence each, naming the system (1-based).
    """

    text: str
    exclusives: tuple[str, ...]
    first_measure: tuple[int, ...]
    measures: tuple[int, ...]
    problems: tuple[str, ...] = field(default=())


def category(token: str) -> str | None:
    """The header category of an interpretation token (`*clefG2` -> "clef"), None if none."""
    for name, pattern in _CATEGORIES:
        if pattern.match(token):
            return name
    return None


def recip(quarters: Fraction) -> str | None:
    """The kern recip of a duration in quarters (3 -> "2.", 4 -> "1"), None if no single one fits."""
    if quarters <= 0:
        return None
    for dots, factor in ((0, Fraction(1)), (1, Fraction(3, 2)), (2, Fraction(7, 4))):
        whole = Fraction(4) * factor / quarters
        if whole.denominator == 1:
            return f"{whole.numerator}{'.' * dots}"
        if whole == Fraction(1, 2):
            return "0" + "." * dots
    return None


def stitch(systems: list[SystemKern]) -> StitchedScore:
    """Join `systems` (in reading order) into one score; see the module docstring."""
    docs = [parse(s.text) for s in systems]
    layouts = [_exclusives(d) for d in docs]
    usable = [layout for layout in layouts if layout]
    if not usable:
        return StitchedScore(text="", exclusives=(), first_measure=(), measures=())
    base = _majority(usable)
    state: dict[tuple[int, str], str] = {}  # (base track, category) -> token in force
    problems: list[str] = []
    lines: list[str] = []
    first_measure: list[int] = []
    measure_counts: list[int] = []
    measures_so_far = 0
    header_written = False
    for number, (system, doc, layout) in enumerate(zip(systems, docs, layouts, strict=True), 1):
        first_measure.append(measures_so_far + 1)
        measure_counts.append(len(doc.measures))
        measures_so_far += len(doc.measures)
        if not layout:
            problems.append(f"system {number}: no kern could be read; it is left out")
            continue
        mapping = _map_tracks(layout, base)
        if layout != base:
            problems.append(
                f"system {number}: {len(layout)} spine(s) {'/'.join(layout)} where the score has "
                f"{len(base)}; mapped onto the score's spines"
            )
        fillers = _rest_fillers(doc)
        header, body = _split_header(doc)
        leading = [r.text for r in doc.records[: max(_exclusive_index(doc), 0)] if r.is_global]
        if not header_written:
            lines += leading
            lines.append("\t".join(base))
            for record in header:
                if record.is_global:
                    lines.append(record.text)
                    continue
                fields = _remap(record, mapping, base, fillers)
                _update_state(state, fields)
                lines.append("\t".join(fields))
            header_written = True
        else:
            changes, dropped = _changes(header, mapping, base, state, _measure_lengths(doc))
            if dropped:
                problems.append(
                    f"system {number}: its meter differs from the one in force but fewer of its "
                    "measures fit it; kept the meter in force"
                )
            body = _join_barline(lines, body, base, mapping, fillers)
            lines.append(PAGE_BREAK if system.new_page else LINE_BREAK)
            lines += [text for text in leading if not _BREAK.match(text)]
            if changes:
                lines.append("\t".join(changes))
        for record in body:
            if record.is_global:
                if not _BREAK.match(record.text):
                    lines.append(record.text)
                continue
            fields = _remap(record, mapping, base, fillers)
            if record.kind is Kind.INTERPRETATION:
                _update_state(state, fields)
            lines.append("\t".join(fields))
        lines += _merges("\n".join(lines), len(base))
    lines.append("\t".join("*-" for _ in base))
    return StitchedScore(
        text="\n".join(lines) + "\n",
        exclusives=base,
        first_measure=tuple(first_measure),
        measures=tuple(measure_counts),
        problems=tuple(problems),
    )


def _exclusive_index(doc: KernDocument) -> int:
    return next((i for i, r in enumerate(doc.records) if r.is_exclusive), -1)


def _exclusives(doc: KernDocument) -> tuple[str, ...]:
    """The system's spine types; a headerless system's parse guesses `**kern` for every field."""
    index = _exclusive_index(doc)
    if index >= 0:
        return doc.records[index].fields
    first = next((r for r in doc.records if not r.is_global), None)
    return ("**kern",) * len(first.fields) if first is not None else ()


def _majority(layouts: list[tuple[str, ...]]) -> tuple[str, ...]:
    counts = Counter(layouts)
    best = max(counts.values())
    return next(layout for layout in layouts if counts[layout] == best)


def _map_tracks(layout: tuple[str, ...], base: tuple[str, ...]) -> dict[int, int]:
    """System track -> base track (both 1-based), matching spines of each type from the right.

    From the right because kern lists staves bottom first: a one-staff system in a piano score
    is more likely its upper staff (a melody, a right-hand passage) than its bass.
    """
    mapping: dict[int, int] = {}
    for kind in set(base):
        ours = [i + 1 for i, t in enumerate(layout) if t == kind]
        theirs = [i + 1 for i, t in enumerate(base) if t == kind]
        mapping.update(zip(reversed(ours), reversed(theirs), strict=False))
    return mapping


def _split_header(doc: KernDocument) -> tuple[list[Record], list[Record]]:
    """(header, body): the header runs from after the exclusive record to the first data,
    barline or spine manipulator; the body stops at the terminator."""
    start = _exclusive_index(doc) + 1
    records = doc.records[start:]
    cut = next(
        (
            i
            for i, r in enumerate(records)
            if r.kind in (Kind.DATA, Kind.BARLINE) or r.is_manipulator
        ),
        len(records),
    )
    header, body = records[:cut], records[cut:]
    end = next(
        (
            i
            for i, r in enumerate(body)
            if r.kind is Kind.INTERPRETATION and set(r.fields) == {"*-"}
        ),
        len(body),
    )
    body = [r for r in body[:end] if r.kind is not Kind.EMPTY and not r.is_exclusive]
    return [r for r in header if r.kind is not Kind.EMPTY], body


def _rest_fillers(doc: KernDocument) -> dict[int, str]:
    """Record index -> a whole-measure rest, for the first data record of each measure."""
    fillers: dict[int, str] = {}
    for measure in doc.measures:
        known = [d for d in measure.durations.values() if d]
        first = next(
            (i for i in range(measure.start, measure.stop) if doc.records[i].kind is Kind.DATA),
            None,
        )
        rest = recip(max(known)) if known else None
        if first is not None and rest is not None:
            fillers[doc.records[first].line] = rest + "r"
    return fillers


def _remap(
    record: Record, mapping: dict[int, int], base: tuple[str, ...], fillers: dict[int, str]
) -> list[str]:
    """The record's fields laid out on the base tracks (identity when the layouts agree)."""
    groups: dict[int, list[str]] = {}
    for text, track in zip(record.fields, record.tracks, strict=True):
        if track in mapping:
            groups.setdefault(mapping[track], []).append(text)
    fields: list[str] = []
    for track, kind in enumerate(base, 1):
        if track in groups:
            fields += groups[track]
        elif record.kind is Kind.DATA:
            rest = fillers.get(record.line) if kind == "**kern" else None
            fields.append(rest or ".")
        elif record.kind is Kind.BARLINE:
            fields.append(record.fields[0])
        elif record.kind is Kind.LOCAL_COMMENT:
            fields.append("!")
        else:
            fields.append("*")
    return fields


def _update_state(state: dict[tuple[int, str], str], fields: list[str]) -> None:
    # Only records with one field per base track reach here at a join; inside a body a split
    # spine shifts the columns, which can only make a later header token look like a change.
    for track, token in enumerate(fields, 1):
        name = category(token)
        if name is not None:
            state[(track, name)] = token


def _changes(
    header: list[Record],
    mapping: dict[int, int],
    base: tuple[str, ...],
    state: dict[tuple[int, str], str],
    lengths: list[Fraction],
) -> tuple[list[str], bool]:
    """One interpretation record with the header tokens that differ from those in force ([]
    when none), and whether a meter change was dropped (see `_meter_supported`)."""
    found: dict[tuple[int, str], str] = {}
    for record in header:
        if record.kind is not Kind.INTERPRETATION:
            continue
        for track, token in enumerate(_remap(record, mapping, base, {}), 1):
            name = category(token)
            if name is None or name in ("staff", "instrument", "part"):
                continue  # these name the spine; they never change mid-score
            if state.get((track, name)) != token:
                found[(track, name)] = token  # a second change of one spine: the last wins
    dropped = False
    for (track, name), token in list(found.items()):
        if name == "meter" and not _meter_supported(token, state.get((track, name)), lengths):
            del found[(track, name)]
            found.pop((track, "mensur"), None)  # the sign goes with the meter it shows
            dropped = True
    changes = ["*"] * len(base)
    for (track, name), token in found.items():
        state[(track, name)] = token
        changes[track - 1] = token
    return (changes if any(c != "*" for c in changes) else []), dropped


def _meter_length(token: str | None) -> Fraction | None:
    match = re.fullmatch(r"\*M(\d+)/(\d+)", token or "")
    if match is None or int(match.group(2)) == 0:
        return None
    return Fraction(4 * int(match.group(1)), int(match.group(2)))


def _meter_supported(new: str, old: str | None, lengths: list[Fraction]) -> bool:
    """Whether more of a system's measures last `new`'s length than `old`'s; a meter with no
    length (`*M*`, `*MX`), or no meter before, is always taken."""
    new_length, old_length = _meter_length(new), _meter_length(old)
    if new_length is None or old_length is None:
        return True
    return sum(n == new_length for n in lengths) > sum(n == old_length for n in lengths)


def _measure_lengths(doc: KernDocument) -> list[Fraction]:
    """How long each measure of a system lasts: its longest spine, in quarters."""
    lengths = []
    for measure in doc.measures:
        known = [d for d in measure.durations.values() if d is not None]
        if known:
            lengths.append(max(known))
    return lengths


def _join_barline(
    lines: list[str],
    body: list[Record],
    base: tuple[str, ...],
    mapping: dict[int, int],
    fillers: dict[int, str],
) -> list[Record]:
    """Keep one barline at the join: the previous system's, else the one this system opens with."""
    first = next((i for i, r in enumerate(body) if not r.is_global), None)
    if first is None or body[first].kind is not Kind.BARLINE:
        return body
    previous = next((line for line in reversed(lines) if not line.startswith("!!")), "")
    if not previous.startswith("="):
        lines.append("\t".join(_remap(body[first], mapping, base, fillers)))
    return body[:first] + body[first + 1 :]


def _merges(text: str, width: int) -> list[str]:
    """`*v` records that bring split spines at the end of `text` back to `width` spines."""
    doc = parse(text)
    last = next((r for r in reversed(doc.records) if not r.is_global), None)
    if last is None:
        return []
    ids = _ids_after(last)
    added: list[str] = []
    while len(ids) > width and len(added) < 16:
        depth = max(i.count(".") for i in ids)
        if depth == 0:
            break
        fields, merged, i = [], [], 0
        done = False  # one group per record: adjacent `*v` runs would merge into one spine
        while i < len(ids):
            parent = ids[i].rpartition(".")[0]
            j = i
            while j + 1 < len(ids) and ids[j + 1].rpartition(".")[0] == parent and parent:
                j += 1
            if not done and ids[i].count(".") == depth and j > i:
                fields += ["*v"] * (j - i + 1)
                merged.append(parent)
                done = True
            else:
                fields += ["*"] * (j - i + 1)
                merged += ids[i : j + 1]
            i = j + 1
        if not done:
            break
        added.append("\t".join(fields))
        ids = merged
    return added


def _ids_after(record: Record) -> list[str]:
    """Spine ids after `record` (its own ids, updated by any `*^`, `*v` or `*-` it holds)."""
    if not record.is_manipulator:
        return list(record.spines)
    ids: list[str] = []
    previous_merge = False
    for token, spine in zip(record.fields, record.spines, strict=False):
        if token == "*^":
            ids += [spine + ".1", spine + ".2"]
        elif token == "*v":
            if not previous_merge:
                ids.append(spine.rpartition(".")[0] or spine)
        elif token != "*-":
            ids.append(spine)
        previous_merge = token == "*v"
    return ids

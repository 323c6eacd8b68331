"""Check **kern text and list its problems, most useful for what a recogniser gets wrong.

The rules are Humdrum's as humlib (and converter21, its port) apply them, checked against the
3,677 curated files of the shared corpus (tests/kern/test_validate_corpus_cases.py keeps the
cases that once were misread).

Errors (the text is structurally wrong; converters may fail or silently change the music):
    From the parser: missing-header, missing-terminator, after-terminator, field-count,
    mixed-record, manipulator; overlap (notes on one line that their spines say start at
    different times: a wrong duration before them); spine-durations (a spine whose notes end
    before the barline, or start after it, while the others go on: reported at the barline; a
    note held over a barline is legal). From here: malformed-token (a subtoken with no
    duration, no pitch, or two of either), tie-unopened (`_` or `]` with no open tie on that
    pitch in its staff, or, for linked ties `N[`/`N]`, in any staff), tie-unclosed.
Warnings (legal kern that is often a mistake):
    empty-line, unknown-signifier (a character **kern does not define and no `!!!RDF**kern:` record
    declares), measure-duration (a measure longer or shorter than its `*M` meter; a shorter first
    or last measure is a pick-up or a final bar and not reported), barline-mismatch (spines
    disagree on a measure number), slur-unopened, slur-unclosed (slurs may cross staves, so they
    are counted per part, not per spine).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

from omrgemma.kern.parse import KernDocument, Kind, measure_label, parse
from omrgemma.kern.problems import Problem, error, warning
from omrgemma.kern.tokens import KNOWN_SIGNIFIERS

_RDF = re.compile(r"!!!RDF\*\*kern:\s*(\S+)\s*=")
_RDF_MEANING = re.compile(r"!!!RDF\*\*kern:\s*(\S+?)\s*=(.*)")
_BAR_NUMBER = re.compile(r"=+(\d+)")


@dataclass(frozen=True, slots=True)
class TieIssue:
    """A tie mark without its partner: `kind` is "unopened" (`_`/`]`) or "unclosed" (`[`/`_`)."""

    record: int  # index into doc.records
    field: int
    note: int  # subtoken index within the token
    kind: str


def validate(source: str | KernDocument, path: str | None = None) -> list[Problem]:
    """All problems of kern text (or an already parsed document), sorted by line."""
    doc = parse(source, path) if isinstance(source, str) else source
    problems = list(doc.problems)
    problems += _token_problems(doc)
    problems += _measure_problems(doc)
    problems += _barline_problems(doc)
    for issue in tie_issues(doc):
        record = doc.records[issue.record]
        note = record.fields[issue.field].split(" ")[issue.note]
        if issue.kind == "unopened":
            problems.append(
                error(record.line, "tie-unopened", f"tie end {note!r} with no tie start")
            )
        else:
            problems.append(error(record.line, "tie-unclosed", f"tie {note!r} is never closed"))
    problems += _slur_problems(doc)
    return sorted(problems, key=lambda p: (p.line, p.severity != "error", p.code))


def has_errors(problems: list[Problem]) -> bool:
    return any(p.severity == "error" for p in problems)


def declared_signifiers(doc: KernDocument) -> set[str]:
    """Characters declared by `!!!RDF**kern: X = meaning` records."""
    found: set[str] = set()
    for record in doc.records:
        if record.kind is Kind.REFERENCE and (match := _RDF.match(record.text)):
            found.update(match.group(1))
    return found


def _token_problems(doc: KernDocument) -> list[Problem]:
    problems = []
    allowed = KNOWN_SIGNIFIERS | declared_signifiers(doc)
    for record in doc.records:
        for index, token in record.kern_tokens():
            if token.malformed:
                problems.append(
                    error(record.line, "malformed-token", f"field {index + 1}: {token.malformed}")
                )
            unknown = {c for note in token.notes for c in note.unknown} - allowed
            if unknown:
                chars = "".join(sorted(unknown))
                message = f"field {index + 1}: {token.text!r} has unknown characters {chars!r}"
                problems.append(warning(record.line, "unknown-signifier", message))
    return problems


def _measure_problems(doc: KernDocument) -> list[Problem]:
    """Measures longer or shorter than their meter (spines that disagree are the parser's)."""
    problems = []
    last = len(doc.measures) - 1
    for measure in doc.measures:
        line = doc.records[min(measure.stop, len(doc.records) - 1)].line  # its closing barline
        known = {spine: d for spine, d in measure.durations.items() if d is not None}
        if not known:
            continue
        # a note held over the barline (early music) makes its spine longer, never shorter
        spine, duration = min(known.items(), key=lambda item: item[1])
        meter = measure.meters.get(spine)
        if meter is None or duration == meter:
            continue
        if duration < meter and measure.index in (0, last):
            continue  # a pick-up or a final measure
        problems.append(
            warning(
                line,
                "measure-duration",
                f"{measure_label(measure)} lasts {_quarters(duration)} "
                f"but the meter says {_quarters(meter)}",
            )
        )
    return problems


def _barline_problems(doc: KernDocument) -> list[Problem]:
    problems = []
    for record in doc.records:
        if record.kind is not Kind.BARLINE:
            continue
        numbers = {
            m.group(1) if (m := _BAR_NUMBER.match(record.fields[i])) else None
            for i in record.kern_indices()
        }
        if len(numbers) > 1:
            problems.append(
                warning(
                    record.line, "barline-mismatch", "the spines disagree on the measure number"
                )
            )
    return problems


def tie_issues(doc: KernDocument) -> list[TieIssue]:
    """Tie marks without a partner on the same pitch in the same track (part).

    Linked ties (the tie mark preceded by the signifier an `!!!RDF**kern: N = linked` record
    declares, `N[` ... `N]`) may join notes of different staves, so they are matched by pitch
    over the whole score, as humlib does. A section label (`*>A2`, the second ending) breaks
    the file order: a tie open when a section starts may end in one that comes later in the
    performance but earlier in the file, and a tie end in a later section may continue one from
    before an earlier label. Such ties are not reported.
    """
    issues: list[TieIssue] = []
    # (track, spine, pitch) -> where the tie was opened; track 0 for linked ties
    open_ties: dict[tuple[int, str, str], tuple[int, int, int]] = {}
    across_sections: set[tuple[int, str]] = set()  # (track, pitch) open at a section label
    linked = linked_signifier(doc)
    for r, record in enumerate(doc.records):
        if record.kind is Kind.INTERPRETATION and any(_is_section_label(f) for f in record.fields):
            across_sections.update((track, pitch) for track, _, pitch in open_ties)
            open_ties.clear()
        for f, token in record.kern_tokens():
            for n, note in enumerate(token.notes):
                if not note.is_note or not (note.tie_start or note.tie_continue or note.tie_end):
                    continue
                pitch = note.pitch.replace("n", "")
                is_linked = bool(linked) and any(linked + mark in note.text for mark in "[_]")
                track = 0 if is_linked else record.tracks[f]
                own = (track, record.spines[f], pitch)
                keys = _open_ties(open_ties, own, linked=bool(linked))
                if note.tie_start and not (note.tie_continue or note.tie_end):
                    if own in open_ties:
                        issues.append(TieIssue(*open_ties[own], "unclosed"))
                    open_ties[own] = (r, f, n)
                    continue
                # `_`, `]`, and the continuations some encoders write as `[2D]` or `[2D_`
                if keys:
                    for key in keys:
                        del open_ties[key]
                elif not note.tie_start and (track, pitch) not in across_sections:
                    issues.append(TieIssue(r, f, n, "unopened"))
                if note.tie_continue or note.tie_start:
                    open_ties[own] = (r, f, n)
    issues += [TieIssue(*where, "unclosed") for where in open_ties.values()]
    return sorted(issues, key=lambda i: (i.record, i.field, i.note))


def _open_ties(
    open_ties: dict[tuple[int, str, str], tuple[int, int, int]],
    own: tuple[int, str, str],
    *,
    linked: bool,
) -> list[tuple[int, str, str]]:
    """The open ties a `_` or `]` ends: its own voice's, else those of the other voices of its
    staff (ties cross `*^`/`*v`; after a merge one note may end two voices' ties), else a
    linked one from any staff."""
    if own in open_ties:
        return [own]
    track, _, pitch = own
    same_staff = [k for k in open_ties if k[0] == track and k[2] == pitch]
    if same_staff or not linked:
        return same_staff
    return [k for k in open_ties if k[2] == pitch][:1]


def linked_signifier(doc: KernDocument) -> str:
    """The signifier of linked ties and slurs (`!!!RDF**kern: N = linked`), "" if none."""
    for record in doc.records:
        if record.kind is Kind.REFERENCE and (match := _RDF_MEANING.match(record.text)):
            if "link" in match.group(2):
                return match.group(1)
    return ""


def _is_section_label(field: str) -> bool:
    """`*>A`, `*>B1` start a section; `*>[A,A,B]` and `*>norep[A,B]` are expansion lists."""
    return field.startswith("*>") and "[" not in field


def _slur_problems(doc: KernDocument) -> list[Problem]:
    problems = []
    depth = 0  # one count for the whole score: slurs cross from staff to staff
    first_open = 0
    for record in doc.records:
        for _, token in record.kern_tokens():
            for note in token.notes:
                if depth == 0 and note.slur_starts:
                    first_open = record.line
                depth += note.slur_starts - note.slur_ends
                if depth < 0:
                    problems.append(
                        warning(
                            record.line,
                            "slur-unopened",
                            f"{note.text!r} closes a slur that was never opened",
                        )
                    )
                    depth = 0
    if depth > 0:
        problems.append(warning(first_open, "slur-unclosed", f"{depth} slur(s) never closed"))
    return problems


def _quarters(value: Fraction) -> str:
    return f"{value} quarter{'s' if value != 1 else ''}"

"""Check **kern text and list its problems, most useful for what a recogniser gets wrong.

Errors (the text is structurally wrong; converters may fail or silently change the music):
    missing-header, missing-terminator, after-terminator, field-count, mixed-record, manipulator
    and overlap (a note that starts before the one before it in its spine has ended: a wrong
    duration) from the parser; malformed-token (a subtoken with no duration, no pitch or two of either),
    spine-durations (the **kern spines of one measure last different times), tie-unopened (`_` or
    `]` without a `[` on that pitch), tie-unclosed.
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

from omrgemma.kern.parse import KernDocument, Kind, parse
from omrgemma.kern.problems import Problem, error, warning
from omrgemma.kern.tokens import KNOWN_SIGNIFIERS

_RDF = re.compile(r"!!!RDF\*\*kern:\s*(\S+)\s*=")
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
    problems = []
    last = len(doc.measures) - 1
    for measure in doc.measures:
        line = doc.records[min(measure.stop, len(doc.records) - 1)].line  # its closing barline
        known = {spine: d for spine, d in measure.durations.items() if d is not None}
        label = (
            "the measure before the first barline"
            if measure.number is None and measure.index == 0
            else (
                f"measure {measure.number}"
                if measure.number is not None
                else f"measure #{measure.index + 1}"
            )
        )
        if len(set(known.values())) > 1:
            detail = ", ".join(f"spine {s}: {_quarters(d)}" for s, d in known.items())
            problems.append(error(line, "spine-durations", f"{label}: spines disagree ({detail})"))
            continue
        if not known:
            continue
        spine, duration = next(iter(known.items()))
        meter = measure.meters.get(spine)
        if meter is None or duration == meter:
            continue
        if duration < meter and measure.index in (0, last):
            continue  # a pick-up or a final measure
        problems.append(
            warning(
                line,
                "measure-duration",
                f"{label} lasts {_quarters(duration)} but the meter says {_quarters(meter)}",
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
    """Tie marks without a partner on the same pitch in the same track (part)."""
    issues: list[TieIssue] = []
    open_ties: dict[tuple[int, str], tuple[int, int, int]] = {}
    for r, record in enumerate(doc.records):
        for f, token in record.kern_tokens():
            for n, note in enumerate(token.notes):
                if not note.is_note or not (note.tie_start or note.tie_continue or note.tie_end):
                    continue
                key = (record.tracks[f], note.pitch.replace("n", ""))
                if note.tie_start and not note.tie_end:  # `[2D]`: some encoders' continuation
                    if key in open_ties:
                        issues.append(TieIssue(*open_ties[key], "unclosed"))
                    open_ties[key] = (r, f, n)
                elif key not in open_ties:
                    issues.append(TieIssue(r, f, n, "unopened"))
                    if note.tie_continue:
                        open_ties[key] = (r, f, n)
                elif note.tie_end and not note.tie_start:
                    del open_ties[key]
                else:
                    open_ties[key] = (r, f, n)
    issues += [TieIssue(*where, "unclosed") for where in open_ties.values()]
    return sorted(issues, key=lambda i: (i.record, i.field, i.note))


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

"""Conservative, reported fixes for what a recogniser typically gets wrong in **kern.

    text, fixes = repair(text)      # fixes: [Fix(line, code, description), ...]

Repair never invents music it cannot justify. In order, it:
  - drops empty lines (`empty-line`);
  - adds a `**kern` header when the text starts with data (`missing-header`), one spine per field;
  - pads a line with too few fields with null tokens (`.`, `*`, `!`, or the line's barline) and
    trims a line with too many (`field-count`), so spines line up again;
  - makes a field of the wrong kind on a barline, comment or interpretation line null
    (`mixed-record`), and a lone `*v` / `*x` with nothing to merge or exchange a plain `*`
    (`manipulator`);
  - replaces an unreadable **kern token (`malformed-token`): a chord keeps its readable notes; a
    token with nothing readable becomes a rest of exactly the duration its measure is missing
    (what the other spines, else the meter, say), or a null token when that is unknown or zero;
  - makes the file timeable (`omrgemma.kern.retime`): re-grids a measure whose voices sit on
    lines their own durations do not reach (`overlap`), and ends a spine shorter than its
    measure's longest with a rest of the difference (`spine-durations`). Without these no
    Humdrum reader can time the file, so one misread duration would cost the whole system;
  - removes tie marks without a partner (`tie-unopened`, `tie-unclosed`): `]` or `_` with no
    `[` before it, `[` with no `]` after it (a `_` whose start is missing becomes `[`);
  - appends `*-` terminators when the file ends with spines still open (`missing-terminator`).
Line numbers in fixes refer to the input text (after empty lines were removed they still do).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from omrgemma.kern.parse import Kind, Parser, field_kind, parse
from omrgemma.kern.retime import rest_token, retime
from omrgemma.kern.tokens import parse_token
from omrgemma.kern.validate import tie_issues

_NULL = {Kind.DATA: ".", Kind.INTERPRETATION: "*", Kind.LOCAL_COMMENT: "!"}


@dataclass(frozen=True, slots=True)
class Fix:
    line: int
    code: str
    description: str

    def to_dict(self) -> dict[str, object]:
        return {"line": self.line, "code": self.code, "description": self.description}


def repair(text: str) -> tuple[str, list[Fix]]:
    """Return repaired kern text and the list of fixes applied (empty when nothing was wrong)."""
    fixes: list[Fix] = []
    lines, origin = _structure(text.lstrip("\ufeff").splitlines(), fixes)
    lines = _tokens(lines, origin, fixes)
    lines, origin, timed = retime(lines, origin)
    fixes += [Fix(line, code, description) for line, code, description in timed]
    lines = _ties(lines, origin, fixes)
    return "".join(line + "\n" for line in lines), sorted(fixes, key=lambda f: f.line)


def _structure(raw: list[str], fixes: list[Fix]) -> tuple[list[str], list[int]]:
    """One pass with the incremental parser: make every line fit the spines that are active."""
    parser = Parser()
    out: list[str] = []
    origin: list[int] = []  # input line number of each output line
    for number, line in enumerate(raw, start=1):
        line = line.rstrip("\r\n")
        if not line.strip():
            fixes.append(Fix(number, "empty-line", "removed an empty line"))
            continue
        if line.startswith("!!"):
            out.append(parser.feed(line).text)
            origin.append(number)
            continue
        fields = line.split("\t")
        if parser.expects_header and not all(f.startswith("**") for f in fields):
            if not parser.seen_header:
                header = "\t".join(["**kern"] * len(fields))
                fixes.append(Fix(number, "missing-header", f"added the header {header!r}"))
                out.append(parser.feed(header).text)
                origin.append(number)
            else:
                fixes.append(Fix(number, "after-terminator", "removed a line after the last `*-`"))
                continue
        fields = (
            _fit(fields, parser.active_count, number, fixes)
            if not parser.expects_header
            else fields
        )
        out.append(parser.feed("\t".join(fields)).text)
        origin.append(number)
    if parser.active_count:
        fixes.append(
            Fix(len(raw), "missing-terminator", f"added {parser.active_count} `*-` terminators")
        )
        out.append("\t".join(["*-"] * parser.active_count))
        origin.append(len(raw))
    return out, origin


def _fit(fields: list[str], count: int, line: int, fixes: list[Fix]) -> list[str]:
    kinds = [field_kind(f) for f in fields]
    kind = max(set(kinds), key=kinds.count) if kinds[0] is Kind.DATA else kinds[0]
    null = fields[0] if kind is Kind.BARLINE else _NULL[kind]
    for i, this_kind in enumerate(kinds):
        if this_kind is not kind:
            fixes.append(Fix(line, "mixed-record", f"field {i + 1}: {fields[i]!r} -> {null!r}"))
            fields[i] = null
    if len(fields) < count:
        fixes.append(
            Fix(line, "field-count", f"padded {count - len(fields)} missing field(s) with {null!r}")
        )
        fields = fields + [null] * (count - len(fields))
    elif len(fields) > count:
        dropped = fields[count:]
        fixes.append(Fix(line, "field-count", f"removed {len(dropped)} extra field(s) {dropped!r}"))
        fields = fields[:count]
    if kind is Kind.INTERPRETATION:
        for i, token in enumerate(fields):
            partner = "*v" if token == "*v" else "*x" if token == "*x" else None
            if partner is None:
                continue
            neighbours = fields[i - 1 : i] + fields[i + 1 : i + 2]
            if partner not in neighbours or (partner == "*x" and fields.count("*x") != 2):
                fixes.append(Fix(line, "manipulator", f"field {i + 1}: lone {token!r} -> '*'"))
                fields[i] = "*"
    return fields


def _tokens(lines: list[str], origin: list[int], fixes: list[Fix]) -> list[str]:
    """Replace unreadable **kern tokens; the rest needs measure durations, so parse first."""
    doc = parse("\n".join(lines))
    lines = list(lines)
    for measure in doc.measures:
        records = doc.measure_records(measure)
        known = [d for d in measure.durations.values() if d is not None]
        target = max(known) if known else next(iter(measure.meters.values()), None)
        for spine in measure.durations:
            bad = []
            elapsed = Fraction(0)
            for record in records:
                for i, token in record.kern_tokens():
                    if record.spines[i] != spine or token.is_null:
                        continue
                    readable = [n for n in token.notes if not n.malformed]
                    if token.malformed and readable:
                        kept = " ".join(n.text for n in readable)
                        bad.append((record, i, kept, f"kept the readable notes {kept!r}"))
                        elapsed += parse_token(kept).duration or 0
                    elif token.malformed:
                        bad.append((record, i, None, ""))
                    else:
                        elapsed += token.duration or 0
            missing = None if target is None else target - elapsed
            for record, i, replacement, why in bad:
                if replacement is None:
                    if missing and missing > 0 and (rest := rest_token(missing)):
                        replacement, why, missing = (
                            rest,
                            f"a rest of the missing {missing} quarters",
                            None,
                        )
                    else:
                        replacement, why = ".", "a null token (its duration is unknown)"
                fields = lines[record.line - 1].split("\t")
                fixes.append(
                    Fix(
                        origin[record.line - 1],
                        "malformed-token",
                        f"field {i + 1}: {fields[i]!r} -> {why}",
                    )
                )
                fields[i] = replacement
                lines[record.line - 1] = "\t".join(fields)
    return lines


def _ties(lines: list[str], origin: list[int], fixes: list[Fix]) -> list[str]:
    doc = parse("\n".join(lines))
    lines = list(lines)
    for issue in tie_issues(doc):
        record = doc.records[issue.record]
        fields = lines[record.line - 1].split("\t")
        notes = fields[issue.field].split(" ")
        note = notes[issue.note]
        if issue.kind == "unopened":
            fixed = note.replace("_", "[") if "_" in note else note.replace("]", "")
        else:
            fixed = note.replace("[", "") if "[" in note else note.replace("_", "]")
        notes[issue.note] = fixed
        fields[issue.field] = " ".join(notes)
        lines[record.line - 1] = "\t".join(fields)
        fixes.append(Fix(origin[record.line - 1], f"tie-{issue.kind}", f"{note!r} -> {fixed!r}"))
    return lines

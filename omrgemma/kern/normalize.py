"""One canonical text form of **kern, for a model's targets and for metrics.

`normalize(text)` keeps:
  - every exclusive and tandem interpretation (clefs, keys, meters, staff and instrument
    assignments, spine manipulators, ...), every barline and every data token, character for
    character, except as listed below;
  - reference records `!!!KEY: value` (and `!!!!` universal ones) when `keep_references=True`
    (the default), in their place.
It removes:
  - every comment record: global `!!...` (including layout `!!LO:`) and local `!` records
    (including layout `!LO:`), since comments do not change the music;
  - layout interpretations `*LO:...` (the field becomes `*`);
  - interpretation records whose fields are then all `*`, and data records whose fields are all
    `.`: both are no-ops;
  - empty lines, trailing whitespace and carriage returns; a leading byte-order mark.
It also makes chords single-spaced (`4c  4e ` -> `4c 4e`) and ends the text with one newline.
The music (every note, rest, duration, tie, slur, beam and articulation) is unchanged, so the
normal form converts to the same notes as the original (tests/kern/test_normalize.py checks it).
"""

from __future__ import annotations

from omrgemma.kern.parse import Kind, parse


def normalize(text: str, *, keep_references: bool = True) -> str:
    """The canonical form of kern `text` (see the module docstring for exactly what changes)."""
    doc = parse(text)
    out: list[str] = []
    for record in doc.records:
        if record.kind is Kind.REFERENCE:
            if keep_references:
                out.append(record.text.rstrip())
            continue
        if record.kind in (Kind.GLOBAL_COMMENT, Kind.LOCAL_COMMENT, Kind.EMPTY):
            continue
        fields = [_clean(f, record.kind) for f in record.fields]
        if record.kind is Kind.INTERPRETATION and all(f == "*" for f in fields):
            continue
        if record.kind is Kind.DATA and all(f == "." for f in fields):
            continue
        out.append("\t".join(fields))
    return "".join(line + "\n" for line in out)


def _clean(field: str, kind: Kind) -> str:
    if kind is Kind.INTERPRETATION and field.startswith("*LO:"):
        return "*"
    if kind is Kind.DATA and " " in field:
        return " ".join(field.split())
    return field.strip()

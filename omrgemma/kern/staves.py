"""Cut a multi-staff system into the standalone kern of each staff: the inverse of `join_staves`.

    system = "**kern\\t**kern\\n*clefF4\\t*clefG2\\n*M2/4\\t*M2/4\\n2C\\t4e\\n.\\t4g\\n=\\t=\\n*-\\t*-\\n"
    upper, lower = split_staves(system)     # top staff first, as on the page
    upper  # "**kern\\n*clefG2\\n*M2/4\\n4e\\n4g\\n=\\n*-\\n"
    join_staves([upper, lower]).text == system

A staff-level model learns to read one staff at a time; the piano corpora write grand-staff
systems. `split_staves` gives each staff the lines a standalone file of that staff would have:

- which spines make a staff: every `**kern` track is one staff, except where `*staffN`
  interpretations say several tracks share a staff (Chopin's prelude 28/1 writes the right hand
  as two `**kern` tracks, both `*staff1`): those stay together, as a staff with two spines.
  Humdrum writes the lowest staff first, so the staves come back in reverse spine order (top
  first); non-`**kern` spines (`**dynam`, `**text`, ...) belong to no staff and are dropped;
- each staff keeps, per record, its own fields only: its sub-spines (`*^`/`*v` voices),
  clefs, keys, meters, barlines, grace notes and local comments;
- a record that is null for the staff (`.`, `*`, `!` in all its fields) is dropped: it was there
  for another staff's notes or interpretations;
- `*staffN` becomes `*staff1`, what a model that saw one staff writes; `join_staves` numbers the
  staves by their place on the page again;
- global records (`!!!` references, `!!` comments) are dropped, as the snippet cutter
  (`omrgemma.data.snippets`) drops them.

Spines are tracked by `omrgemma.kern.parse`: every field of a record carries its track, which
stays the same through splits, merges and exchanges, so a staff's fields are those of its tracks.
The input is expected to be structurally sound kern (what the cutter writes); with field-count
or manipulator errors the fields cannot be assigned to staves, and a `*v` run over two staves
merges them into one spine (legal Humdrum, but no staff can be cut out of it): both raise
`ValueError`.
"""

from __future__ import annotations

import re

from omrgemma.kern.parse import KernDocument, Kind, Record, parse

_STAFF = re.compile(r"\*staff(\d+)$")
_NULL = {Kind.DATA: ".", Kind.INTERPRETATION: "*", Kind.LOCAL_COMMENT: "!"}
_FATAL = ("field-count", "manipulator", "mixed-record")


def split_staves(kern: str) -> list[str]:
    """The standalone kern of each staff of a system, top staff first (see the module doc)."""
    doc = parse(kern)
    fatal = [p for p in doc.problems if p.code in _FATAL]
    if fatal:
        raise ValueError(f"line {fatal[0].line}: {fatal[0].message}")
    staves = staff_tracks(doc)
    for record in doc.records:
        if record.kind is Kind.INTERPRETATION and _merges_staves(record, staves):
            raise ValueError(f"line {record.line}: `*v` merges spines of two staves")
    return [_project(doc, tracks) for tracks in reversed(staves)]


def staff_tracks(doc: KernDocument) -> list[frozenset[int]]:
    """The `**kern` tracks of each staff, in spine order (the lowest staff first).

    Tracks that name the same `*staffN` share a staff; when any `**kern` track names none, every
    track is a staff of its own (a guess about some tracks would be worse than none).
    """
    kern_tracks: list[int] = []
    named: dict[int, str] = {}
    for record in doc.records:
        for track, kind, text in zip(record.tracks, record.exclusives, record.fields, strict=False):
            if kind != "**kern" or track == 0:
                continue
            if track not in kern_tracks:
                kern_tracks.append(track)
            match = _STAFF.match(text)
            if match and record.kind is Kind.INTERPRETATION:
                named.setdefault(track, match.group(1))
    if any(track not in named for track in kern_tracks):
        return [frozenset({track}) for track in kern_tracks]
    staves: dict[str, set[int]] = {}
    for track in kern_tracks:
        staves.setdefault(named[track], set()).add(track)
    return [frozenset(tracks) for tracks in staves.values()]


def _merges_staves(record: Record, staves: list[frozenset[int]]) -> bool:
    """True when a run of adjacent `*v` covers fields of more than one staff."""
    staff_of = {track: i for i, tracks in enumerate(staves) for track in tracks}
    run: set[int | None] = set()
    for token, track in zip(record.fields, record.tracks, strict=True):
        run = run | {staff_of.get(track)} if token == "*v" else set()
        if len(run) > 1:
            return True
    return False


def _project(doc: KernDocument, tracks: frozenset[int]) -> str:
    """The records of `doc` restricted to the fields of `tracks`, null lines left out."""
    lines: list[str] = []
    for record in doc.records:
        if record.is_global or record.kind is Kind.EMPTY:
            continue
        fields = [f for f, t in zip(record.fields, record.tracks, strict=True) if t in tracks]
        if not fields or all(f == _NULL.get(record.kind) for f in fields):
            continue
        if record.kind is Kind.INTERPRETATION:
            fields = ["*staff1" if _STAFF.match(f) else f for f in fields]
        lines.append("\t".join(fields))
    return "\n".join(lines) + "\n"


__all__ = ["split_staves", "staff_tracks"]

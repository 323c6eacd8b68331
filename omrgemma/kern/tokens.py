"""One **kern data token, parsed: notes, rests, chords, durations, ties, slurs, beams.

A token is what one spine holds on one data line: `.` (null), one note or rest (`4.cc#L`), or a
chord of space-separated subtokens (`8C 8E 8G`). Durations are `fractions.Fraction` quarter notes:

    recip N       -> 4/N quarters (N=0: breve, 00: long, 000: maxima)
    recip N%M     -> 4*M/N quarters (`3%2` = 2/3 of a whole note = 8/3 quarters)
    each dot      -> adds half of the previous value (`4..` = 7/4); as in humlib, a dot
                     counts wherever it stands in the subtoken (`4A.` is a dotted quarter)
    q, Q (grace)  -> 0 whatever the recip says

The duration of a chord is the duration of its first subtoken, 0 if that is a grace note; chord
notes after the first may leave out the recip and then share the first one's.
Parsing is cached because real scores repeat the same few hundred tokens.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from fractions import Fraction
from functools import lru_cache

_RECIP = re.compile(r"(\d+)(?:%(\d+))?(\.*)")
_PITCH = re.compile(r"([a-gA-G])\1*")
_LETTERS = frozenset("abcdefgABCDEFG")
# Every signifier the Humdrum **kern reference defines, plus the user-definable ones the corpora use
# (`<`, `>`, `i`, `l`, `N`, `j`, `V`, `+`, `|`, `@`, `Z`, `!` …; declared in `!!!RDF**kern:` records).
KNOWN_SIGNIFIERS = frozenset(
    "0123456789.%"  # duration
    "abcdefgABCDEFG#-nr"  # pitch, accidentals, rest
    "qQPp"  # grace notes, appoggiaturas
    "(){}&"  # slurs, phrases, elisions
    "[_]"  # ties
    "LJKk"  # beams
    "'\"`~^;:,"  # articulations, fermata, arpeggio, breath
    "tTMmWwSsR$Oo"  # ornaments
    "vuzHhUI"  # bowing, sforzando, glissando, mute
    "/\\xXyY?"  # stems, editorial marks, invisibility, questionable
    "<>ijlNVZ+|@"  # user-definable signifiers seen in practice
)


@dataclass(frozen=True, slots=True)
class Note:
    """One subtoken: a note or a rest.

    `pitch` is the kern pitch letters and accidentals (`cc#`, `BB-`), "" for rests;
    `duration` is in quarter notes (0 for grace notes), None when the subtoken has no recip.
    """

    text: str
    pitch: str
    duration: Fraction | None
    recip: str
    is_rest: bool
    is_grace: bool
    tie_start: bool  # [
    tie_continue: bool  # _
    tie_end: bool  # ]
    slur_starts: int  # count of ( (elided &( included)
    slur_ends: int
    is_invisible: bool  # yy
    unknown: str  # characters that are no **kern signifier
    malformed: str  # why this subtoken cannot be read ("" when it can)

    @property
    def is_note(self) -> bool:
        return bool(self.pitch) and not self.is_rest

    @property
    def step_octave(self) -> tuple[str, int] | None:
        """The pitch as (letter, octave) with middle C = ("C", 4), or None for rests."""
        if not self.pitch:
            return None
        letters = _PITCH.match(self.pitch)
        if letters is None:
            return None
        run = letters.group(0)
        octave = 3 + len(run) if run[0].islower() else 4 - len(run)
        return run[0].upper(), octave


@dataclass(frozen=True, slots=True)
class KernToken:
    """A whole data token of a `**kern` spine: null, or one or more `Note`s (a chord)."""

    text: str
    notes: tuple[Note, ...]

    @property
    def is_null(self) -> bool:
        return self.text == "."

    @property
    def duration(self) -> Fraction | None:
        """Quarter notes this token lasts: 0 for a null or all-grace token, None if unreadable."""
        if self.is_null or self.is_grace:
            return Fraction(0)
        return self.notes[0].duration if self.notes else None

    @property
    def is_grace(self) -> bool:
        """A grace note or chord: its first note carries `q` (`cc-q 4aa- 4ccc-` is one grace chord)."""
        return bool(self.notes) and self.notes[0].is_grace

    @property
    def is_rest(self) -> bool:
        return bool(self.notes) and all(note.is_rest for note in self.notes)

    @property
    def malformed(self) -> str:
        return "; ".join(f"{n.text!r}: {n.malformed}" for n in self.notes if n.malformed)


def recip_duration(recip: str) -> Fraction | None:
    """Quarter notes of a kern recip such as `4`, `8.`, `12`, `3%2`, `0`, `00.`; None if invalid."""
    match = _RECIP.fullmatch(recip)
    if match is None:
        return None
    digits, denominator, dots = match.groups()
    if digits.strip("0") == "":  # 0 breve, 00 long, 000 maxima
        base = Fraction(8 * 2 ** (len(digits) - 1))
    else:
        base = Fraction(4) / int(digits)
    if denominator is not None:
        base *= int(denominator)
    return base * (2 - Fraction(1, 2 ** len(dots)))


def _accidental(text: str) -> str:
    """`#`/`##`, `-`/`--` or `n` from anywhere in a subtoken ("" for none)."""
    return "#" * text.count("#") + "-" * text.count("-") or ("n" if "n" in text else "")


@lru_cache(maxsize=65536)
def parse_note(text: str) -> Note:
    """Parse one subtoken (no spaces)."""
    recips = list(_RECIP.finditer(text))
    # as in humlib, pitch letters and accidentals count wherever they stand (`8FzF` is FF,
    # `4e]-` is e-); letters of two different notes are two pitches
    letters = [c for c in text if c in _LETTERS]
    is_rest = "r" in text
    is_grace = "q" in text or "Q" in text
    problems = []
    recip = ""
    duration: Fraction | None = None
    if len(recips) > 1:
        problems.append("more than one duration")
    elif recips:
        # humlib (and converter21) count every `.` of the subtoken as a dot: `4A.` is dotted
        recip = recips[0].group(0).rstrip(".") + "." * text.count(".")
        duration = recip_duration(recip)
    if is_grace:
        duration = Fraction(0)
    elif not recips:
        problems.append("no duration")
    pitch = ""
    if len(set(letters)) > 1:
        problems.append("more than one pitch")
    elif letters:
        pitch = "".join(letters) + _accidental(text)
    if not letters and not is_rest and not ("yy" in text and recips):  # `4yy`: invisible space
        problems.append("no pitch and no rest")
    unknown = "".join(sorted({c for c in text if c not in KNOWN_SIGNIFIERS}))
    return Note(
        text=text,
        pitch="" if is_rest else pitch,
        duration=duration,
        recip=recip,
        is_rest=is_rest,
        is_grace=is_grace,
        tie_start="[" in text,
        tie_continue="_" in text,
        tie_end="]" in text,
        slur_starts=text.count("("),
        slur_ends=text.count(")"),
        is_invisible="yy" in text,
        unknown=unknown,
        malformed=", ".join(problems),
    )


@lru_cache(maxsize=65536)
def parse_token(text: str) -> KernToken:
    """Parse a `**kern` data token; `.` is the null token."""
    if text == ".":
        return KernToken(text=text, notes=())
    notes = [parse_note(part) for part in text.split(" ") if part]
    # Chord notes after the first often leave out the duration (`4G B- d`); they share the first's.
    first = notes[0] if notes else None
    for i, note in enumerate(notes[1:], start=1):
        if note.malformed == "no duration" and first is not None and first.duration is not None:
            notes[i] = replace(note, duration=first.duration, recip=first.recip, malformed="")
    return KernToken(text=text, notes=tuple(notes))

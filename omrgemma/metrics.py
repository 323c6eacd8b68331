"""OMR error rates (CER, SER, LER) exactly as the Sheet Music Transformer defines them, plus note F1.

Edit-distance rates (SMT `eval_functions.py`, the metric PaliGemma 2 reports on GrandStaff):

    CER units: the characters of the kern text ("\\n" and "\\t" count as one character each)
    SER units: krn.replace("\\n", " <b> ").replace("\\t", " <t> ").split(" ")
    LER units: krn.split("\\n")
    rate = 100 * sum_i levenshtein(hyp_i, ref_i) / sum_i len(ref_i)      (micro average, in %)

Normalisation (applied to hypothesis and reference alike, as SMT did for its targets): measure
numbers after `=` are stripped, `re.sub(r"(?<=\\=)\\d+", "", krn)`, so `=12:|!` scores as `=:|!`.
Measure numbers are not printed on most systems, so they cannot be read from the image. Nothing
else is changed: leading/trailing whitespace and `**kern`/`*-` lines count as written, so
predictions and references must use the same framing (the snippet cutter writes both).

Music-level scores (`note_counts`): each text is converted with music21 (converter21 when the
kern package's converter exists) and its notes are compared as multisets of
(onset in quarter notes from the start, MIDI pitch, duration in quarter notes), ignoring parts
and voices. Summing `NoteCounts` over a set and calling `.f1` gives micro precision/recall/F1.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

_MEASURE_NUMBER = re.compile(r"(?<=\=)\d+")


def normalize(krn: str) -> str:
    """Strip measure numbers after `=` (SMT's target normalisation): `=12:|!` -> `=:|!`."""
    return _MEASURE_NUMBER.sub("", krn)


def levenshtein(a: Sequence[Hashable], b: Sequence[Hashable]) -> int:
    """Edit distance (insert, delete, substitute; cost 1 each) between two sequences of hashables.

    Myers' bit-parallel algorithm (Hyyrö's formulation for global distance): one column of the
    DP table is held as two bit vectors (+1 and -1 vertical deltas) in Python ints, so a pair of
    500-character systems costs 500 big-int steps instead of 250,000 Python-level cell updates.
    """
    if len(a) < len(b):
        a, b = b, a  # b, the shorter, becomes the bit pattern
    m = len(b)
    if m == 0:
        return len(a)
    peq: dict[Hashable, int] = {}
    for i, item in enumerate(b):
        peq[item] = peq.get(item, 0) | (1 << i)
    mask = (1 << m) - 1
    top = 1 << (m - 1)
    pv, mv, score = mask, 0, m
    for item in a:
        eq = peq.get(item, 0)
        xv = eq | mv
        xh = (((eq & pv) + pv) ^ pv) | eq
        ph = mv | (~(xh | pv) & mask)
        mh = pv & xh
        if ph & top:
            score += 1
        elif mh & top:
            score -= 1
        ph = ((ph << 1) | 1) & mask  # the "| 1": row 0 of the table grows by one per step
        mh = (mh << 1) & mask
        pv = mh | (~(xv | ph) & mask)
        mv = ph & xv
    return score


def characters(krn: str) -> list[str]:
    return list(krn)


def symbols(krn: str) -> list[str]:
    return krn.replace("\n", " <b> ").replace("\t", " <t> ").split(" ")


def lines(krn: str) -> list[str]:
    return krn.split("\n")


@dataclass(frozen=True, kw_only=True)
class EditCounts:
    """Summed edit distances and reference lengths for the three units; add them over a set."""

    char_edits: int = 0
    char_total: int = 0
    symbol_edits: int = 0
    symbol_total: int = 0
    line_edits: int = 0
    line_total: int = 0

    def __add__(self, other: EditCounts) -> EditCounts:
        return EditCounts(
            char_edits=self.char_edits + other.char_edits,
            char_total=self.char_total + other.char_total,
            symbol_edits=self.symbol_edits + other.symbol_edits,
            symbol_total=self.symbol_total + other.symbol_total,
            line_edits=self.line_edits + other.line_edits,
            line_total=self.line_total + other.line_total,
        )

    @property
    def cer(self) -> float:
        return _percent(self.char_edits, self.char_total)

    @property
    def ser(self) -> float:
        return _percent(self.symbol_edits, self.symbol_total)

    @property
    def ler(self) -> float:
        return _percent(self.line_edits, self.line_total)


def _percent(edits: int, total: int) -> float:
    return 100.0 * edits / total if total else 0.0


def edit_counts(hyp: str, ref: str) -> EditCounts:
    """Edit distances of one hypothesis against its reference, after `normalize`."""
    hyp, ref = normalize(hyp), normalize(ref)
    return EditCounts(
        char_edits=levenshtein(characters(hyp), characters(ref)),
        char_total=len(ref),
        symbol_edits=levenshtein(symbols(hyp), symbols(ref)),
        symbol_total=len(symbols(ref)),
        line_edits=levenshtein(lines(hyp), lines(ref)),
        line_total=len(lines(ref)),
    )


def error_rates(hyps: Iterable[str], refs: Iterable[str]) -> EditCounts:
    """Corpus-level counts over pairs; read `.cer`, `.ser`, `.ler` (percent) from the result."""
    total = EditCounts()
    for hyp, ref in zip(hyps, refs, strict=True):
        total = total + edit_counts(hyp, ref)
    return total


# --- music-level scores -------------------------------------------------------------------------

NoteKey = tuple[Fraction, int, Fraction]  # (onset, MIDI pitch, duration), quarter notes


@dataclass(frozen=True, kw_only=True)
class NoteCounts:
    """Matched, predicted and reference note counts; add over a set for micro P/R/F1."""

    matched: int = 0
    predicted: int = 0
    reference: int = 0

    def __add__(self, other: NoteCounts) -> NoteCounts:
        return NoteCounts(
            matched=self.matched + other.matched,
            predicted=self.predicted + other.predicted,
            reference=self.reference + other.reference,
        )

    @property
    def precision(self) -> float:
        return self.matched / self.predicted if self.predicted else 0.0

    @property
    def recall(self) -> float:
        return self.matched / self.reference if self.reference else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def match_notes(predicted: Counter[NoteKey], reference: Counter[NoteKey]) -> NoteCounts:
    """Multiset match: a note counts as matched as often as it occurs in both."""
    return NoteCounts(
        matched=sum((predicted & reference).values()),
        predicted=sum(predicted.values()),
        reference=sum(reference.values()),
    )


def _quarters(value: float | Fraction) -> Fraction:
    # music21 offsets are floats or Fractions; tuplets make floats like 0.3333333 -> 1/3.
    return Fraction(value).limit_denominator(1000)


def score_notes(score) -> Counter[NoteKey]:
    """(onset, MIDI pitch, duration) multiset of every sounding or grace note of a music21 score."""
    notes: Counter[NoteKey] = Counter()
    for element in score.flatten().notes:
        onset = _quarters(element.offset)
        duration = _quarters(element.duration.quarterLength)
        for pitch in element.pitches:
            notes[(onset, int(pitch.midi), duration)] += 1
    return notes


def kern_notes(krn: str) -> Counter[NoteKey] | None:
    """The note multiset of kern text, or None when it cannot be converted."""
    items = _kern_note_items(krn)
    return None if items is None else Counter(dict(items))


@lru_cache(maxsize=512)  # baselines and stuck models repeat one text thousands of times
def _kern_note_items(krn: str) -> tuple[tuple[NoteKey, int], ...] | None:
    try:
        score = to_score(krn)
    except Exception:  # noqa: BLE001 - any converter failure means "no notes read"
        return None
    return tuple(score_notes(score).items())


def to_score(krn: str):
    """kern -> music21 Score via the project's converter when present, else music21's parser."""
    try:
        from omrgemma.kern.convert import to_score as project_to_score
    except ImportError:
        import music21

        return music21.converter.parse(krn, format="humdrum")
    return project_to_score(krn)


def note_counts(hyp: str, ref_notes: Counter[NoteKey]) -> NoteCounts:
    """Note match of one hypothesis against its reference notes; unconvertible -> 0 predicted."""
    predicted = kern_notes(hyp)
    return match_notes(predicted if predicted is not None else Counter(), ref_notes)

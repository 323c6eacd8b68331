"""Per-measure confidence from the decoder's token log-probabilities.

The decoder scores every token it emits (`logprobs[i]` = log p(token i | image, tokens < i)).
Each token covers a span of the decoded text; it is charged to the line its first visible
character falls on (a token that is only a tab or newline is charged to the line it ends). A
measure's lines run from the first record after its opening barline (the first data record for a
measure at the start, so the header does not count) to its closing barline, and
its confidence is the geometric mean probability of the tokens on those lines,
exp(mean log p): a length-independent score in (0, 1], so a long measure is not penalised for
having more tokens.

    spans = token_spans(pieces)                      # per token, (start, end) in the text
    scores = measure_confidence(text, spans, logprobs)   # per measure of parse(text)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from omrgemma.kern.parse import Kind, parse

LOW_CONFIDENCE = 0.5
"""Measures below this geometric-mean token probability are marked in the output."""


@dataclass(frozen=True, kw_only=True)
class MeasureConfidence:
    """One measure of one system: `measure` is 1-based within the system, `lines` 1-based in
    the system's text (first, last), `p` the geometric-mean token probability, `tokens` how many
    tokens it was computed from."""

    measure: int
    lines: tuple[int, int]
    p: float
    tokens: int


def token_spans(pieces: Sequence[str]) -> list[tuple[int, int]]:
    """(start, end) character offsets of each token's text in `"".join(pieces)`."""
    spans = []
    offset = 0
    for piece in pieces:
        spans.append((offset, offset + len(piece)))
        offset += len(piece)
    return spans


def line_logprobs(
    text: str, spans: Sequence[tuple[int, int]], logprobs: np.ndarray
) -> list[list[float]]:
    """Per line of `text` (0-based list index = line - 1), the log-probabilities charged to it."""
    starts = [0]
    for index, char in enumerate(text):
        if char == "\n":
            starts.append(index + 1)
    per_line: list[list[float]] = [[] for _ in starts]
    for (start, end), logprob in zip(spans, logprobs, strict=True):
        position = start
        while position < end and text[position] in "\t\n":
            position += 1
        if position >= end:  # only separators: charge the line the token ends on
            position = max(start, end - 1)
        line = int(np.searchsorted(starts, min(position, max(len(text) - 1, 0)), side="right")) - 1
        per_line[line].append(float(logprob))
    return per_line


def measure_confidence(
    text: str, spans: Sequence[tuple[int, int]], logprobs: np.ndarray
) -> list[MeasureConfidence]:
    """Confidence of each measure of `parse(text).measures`, in order."""
    per_line = line_logprobs(text, spans, logprobs)
    doc = parse(text)
    results = []
    for number, measure in enumerate(doc.measures, 1):
        start = measure.start
        if measure.opening is None:  # the file's first measure: skip the header, score the music
            start = next(i for i in range(start, measure.stop) if doc.records[i].kind is Kind.DATA)
        first = doc.records[start].line
        last_index = min(measure.stop, len(doc.records) - 1)  # the closing barline, if any
        last = doc.records[last_index].line
        values = [v for line in range(first, last + 1) for v in per_line[line - 1]]
        p = math.exp(sum(values) / len(values)) if values else 1.0
        results.append(
            MeasureConfidence(measure=number, lines=(first, last), p=p, tokens=len(values))
        )
    return results


def system_confidence(logprobs: np.ndarray) -> float:
    """Geometric-mean probability of all the tokens of a system (1.0 for none)."""
    return float(np.exp(np.mean(logprobs))) if len(logprobs) else 1.0


def mark_low_confidence(
    text: str,
    scores: Sequence[MeasureConfidence],
    *,
    system: int,
    threshold: float = LOW_CONFIDENCE,
) -> str:
    """`text` with a global comment before each measure whose p is below `threshold`.

    The comment reads `!!omrgemma: low confidence (p=0.42) in system 2 measure 3`; global
    comments are legal between any two records, so the kern stays valid, and they survive
    stitching, repair and conversion to the kern output.
    """
    lines = text.split("\n")
    inserts = {
        s.lines[
            0
        ]: f"!!omrgemma: low confidence (p={s.p:.2f}) in system {system} measure {s.measure}"
        for s in scores
        if s.p < threshold and s.lines[0] > 0
    }
    out = []
    for number, line in enumerate(lines, 1):
        if number in inserts:
            out.append(inserts[number])
        out.append(line)
    return "\n".join(out)

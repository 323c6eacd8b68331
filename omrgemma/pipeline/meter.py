"""The staves of one system share a meter: where their readings disagree, the surest one wins.

A staff model reads the staves of a piano system one by one, and on its own each staff's
time signature is read wrong quite often (stage 8, first 60 GrandStaff-like systems: the two
staves disagreed on 30, and in 21 of those one of them was right). The meter a staff is read
in steers how its rhythm is read, so a wrong one costs more than its own line. So:

    starts = meter_starts(staff_results)   # {staff index: the text its reading must begin with}
    # re-read those staves, each forced to begin with its own header up to the meter line and
    # the agreed meter line there (`Recognizer.recognize(images, starts)`), and keep those

The agreed meter is the `*M` line with the highest summed token log-probability among the
staves that wrote one (the surest reading of it; on those 21 systems it was the right one 19
times). Only staves that wrote a different `*M` line are re-read; a staff that wrote none is
left as it is, and so is a system whose staves agree.

Measured with the stage-8 model (`benchmarks/meter.py`, `benchmarks/results/meter.md`), per
staff -> agreed: on 60 systems of *training* movements (staves disagreed in 24) system SER 58.6
-> 58.0 %, note F1 0.127 -> 0.135; through `omrgemma evaluate`, first 100 systems, GrandStaff-like
SER 51.9 -> 51.0 %, note F1 0.092 -> 0.106; real scans SER 63.3 -> 61.2 %, note F1 0.026 ->
0.028. More notes come out right at no cost in SER; decoding takes about 1.2 times as long.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from omrgemma.pipeline import confidence as conf
from omrgemma.recognizer import SystemResult


@dataclass(frozen=True, kw_only=True)
class MeterLine:
    """A staff reading's first `*M` line: its index among the text's lines, the line itself,
    and the summed log-probability of the tokens on it."""

    index: int
    text: str
    logprob: float


def meter_line(result: SystemResult) -> MeterLine | None:
    """The first `*M<digits>` line of a one-staff reading, None if it wrote none (or no token
    scores, e.g. a stand-in)."""
    lines = result.kern.split("\n")
    index = next((i for i, line in enumerate(lines) if _is_meter(line)), None)
    scored = len(result.token_logprobs) == len(result.pieces)
    if index is None or not scored or "".join(result.pieces) != result.kern:
        return None
    spans = conf.token_spans(result.pieces)
    per_line = conf.line_logprobs(result.kern, spans, result.token_logprobs)
    return MeterLine(index=index, text=lines[index], logprob=float(sum(per_line[index])))


def meter_starts(staves: Sequence[SystemResult]) -> dict[int, str]:
    """{index of a staff to re-read: the text its reading must begin with} for one system's
    staves (top to bottom): empty when fewer than two staves wrote a meter or they agree."""
    lines = {i: line for i, s in enumerate(staves) if (line := meter_line(s)) is not None}
    if len(lines) < 2 or len({line.text for line in lines.values()}) == 1:
        return {}
    agreed = max(lines.values(), key=lambda line: line.logprob).text
    starts = {}
    for i, line in lines.items():
        if line.text != agreed:
            head = staves[i].kern.split("\n")[: line.index]
            starts[i] = "\n".join([*head, agreed]) + "\n"
    return starts


def _is_meter(line: str) -> bool:
    return line.startswith("*M") and line[2:3].isdigit() and "\t" not in line


__all__ = ["MeterLine", "meter_line", "meter_starts"]

"""The staves of a system agree on one meter (`omrgemma.pipeline.meter`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pytest

from omrgemma.pipeline.meter import meter_line, meter_starts
from omrgemma.pipeline.staves import StaffReader
from omrgemma.recognizer import SystemResult

TOP = "**kern\n*clefG2\n*k[]\n*M3/4\n2.c\n=\n*-\n"
BOTTOM = "**kern\n*clefF4\n*k[]\n*M2/4\n2C\n=\n*-\n"


def _result(kern: str, meter_p: float = 0.9) -> SystemResult:
    """One token per line of `kern`; the `*M` line's token has probability `meter_p`."""
    pieces = tuple(line + "\n" for line in kern.rstrip("\n").split("\n"))
    logprobs = [math.log(meter_p if p.startswith("*M") else 0.99) for p in pieces]
    return SystemResult(kern=kern, tokens=tuple(range(len(pieces))),
                        token_logprobs=np.array(logprobs, np.float32), pieces=pieces)  # fmt: skip


def test_the_meter_line_and_how_sure_the_model_was_of_it():
    line = meter_line(_result(TOP, meter_p=0.5))
    assert (line.index, line.text) == (3, "*M3/4")
    assert line.logprob == pytest.approx(math.log(0.5))
    assert meter_line(_result("**kern\n*clefG2\n4c\n*-\n")) is None  # no meter written
    no_scores = SystemResult(kern=TOP, tokens=(), token_logprobs=np.zeros(0), pieces=())
    assert meter_line(no_scores) is None


def test_the_less_sure_staff_is_re_read_beginning_with_the_surer_meter():
    starts = meter_starts([_result(TOP, meter_p=0.9), _result(BOTTOM, meter_p=0.3)])
    assert starts == {1: "**kern\n*clefF4\n*k[]\n*M3/4\n"}
    starts = meter_starts([_result(TOP, meter_p=0.2), _result(BOTTOM, meter_p=0.3)])
    assert starts == {0: "**kern\n*clefG2\n*k[]\n*M2/4\n"}


def test_staves_that_agree_or_write_no_meter_are_left_alone():
    assert meter_starts([_result(TOP), _result(TOP.replace("G2", "F4"), meter_p=0.1)]) == {}
    assert meter_starts([_result(TOP), _result("**kern\n*clefF4\n2C\n=\n*-\n")]) == {}
    assert meter_starts([_result(TOP)]) == {}


@dataclass
class Rereader:
    """A staff model: answers TOP, BOTTOM (its meter unsure) for each system's staves, and
    for a re-read, the start it was given and the rest of BOTTOM's music."""

    unit: str = "staff"
    image_size: tuple[int, int] = (64, 512)
    calls: list[tuple[int, list[str] | None]] = field(default_factory=list)

    def recognize(self, images, starts=None, measures=None):
        self.calls.append((len(images), None if starts is None else list(starts)))
        if starts is not None:
            return [_result(start + "2C\n=\n*-\n") for start in starts]
        return [_result(TOP) if i % 2 == 0 else _result(BOTTOM, 0.1) for i in range(len(images))]


def test_the_reader_re_reads_only_the_disagreeing_staves_and_joins_the_agreed_ones():
    from omrgemma.data.render import render_system

    piano = render_system(
        "**kern\t**kern\n*clefF4\t*clefG2\n*k[]\t*k[]\n*M3/4\t*M3/4\n2.C\t2.c\n=\t=\n*-\t*-\n"
    )
    model = Rereader()
    reader = StaffReader(inner=model, image_size=(1024, 1024))
    results = reader.recognize([piano, piano])
    # one call for the 4 staves, one for the 2 bottom staves, each starting with the agreed meter
    assert model.calls == [(4, None), (2, ["**kern\n*clefF4\n*k[]\n*M3/4\n"] * 2)]
    for result in results:
        assert "*M3/4\t*M3/4" in result.kern.split("\n")
        assert [s.kern.count("*M3/4") for s in result.staves] == [1, 1]

"""Per-measure confidence from token log-probabilities."""

from __future__ import annotations

import math

import numpy as np
import pytest

from omrgemma.pipeline.confidence import (
    line_logprobs,
    mark_low_confidence,
    measure_confidence,
    token_spans,
)

PIECES = ["**kern", "\n", "*M2/4", "\n", "4c", "\n", "4d", "\n", "=", "\n", "2e", "\n", "=", "\n"]
TEXT = "".join(PIECES)


def test_tokens_charged_to_their_lines():
    logprobs = np.log(np.arange(1, len(PIECES) + 1) / 20.0)
    per_line = line_logprobs(TEXT, token_spans(PIECES), logprobs)
    # the newline token is charged to the line it ends
    assert per_line[0] == pytest.approx([logprobs[0], logprobs[1]])
    assert per_line[2] == pytest.approx([logprobs[4], logprobs[5]])


def test_geometric_mean_per_measure_skips_the_header():
    p = {"4c": 0.9, "4d": 0.9, "=": 0.5, "2e": 0.2}
    logprobs = np.array([math.log(p.get(piece, 1.0)) for piece in PIECES])
    scores = measure_confidence(TEXT, token_spans(PIECES), logprobs)
    assert [s.measure for s in scores] == [1, 2]
    assert scores[0].lines == (3, 5)  # 4c .. the closing barline, not **kern or *M2/4
    first = [0.9, 1.0, 0.9, 1.0, 0.5, 1.0]
    assert scores[0].p == pytest.approx(math.exp(np.mean(np.log(first))))
    assert scores[1].p == pytest.approx(math.exp(np.mean(np.log([0.2, 1.0, 0.5, 1.0]))))


def test_marks_only_low_measures():
    p = {"2e": 0.01}  # (0.01 * 0.99**3) ** (1/4) = 0.31
    logprobs = np.array([math.log(p.get(piece, 0.99)) for piece in PIECES])
    scores = measure_confidence(TEXT, token_spans(PIECES), logprobs)
    marked = mark_low_confidence(TEXT, scores, system=2, threshold=0.5).splitlines()
    comments = [line for line in marked if line.startswith("!!omrgemma")]
    assert len(comments) == 1
    assert comments[0].startswith("!!omrgemma: low confidence (p=0.")
    assert comments[0].endswith("in system 2 measure 2")
    assert marked[marked.index(comments[0]) + 1] == "2e"

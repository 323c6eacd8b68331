"""The measure budget: a logit mask that bounds how many measures a decoded staff holds."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from omrgemma.decode import BeamSearch, Sampling, compiled_variants, generate
from omrgemma.errors import UsageError
from omrgemma.kern.parse import parse
from omrgemma.measure_budget import (
    BAR,
    COMMENT,
    END,
    EOS,
    INTERPRETATION,
    MERGE,
    NEWLINE,
    TEXT,
    MeasureBudget,
    piece_kind,
)

from .tinymodel import PROMPTS

EOS_ID = 1


class Pieces:
    """A tokenizer stand-in for the TINY model's 256 ids: id i decodes to PIECES[i % 8]."""

    PIECES = ("", "", "\n", "=", "4c", "8d\n", "*-", "*v")
    vocab_size = 256

    def decode(self, ids):
        return "".join(self.PIECES[i % 8] for i in ids)


def test_pieces_are_classified_by_how_they_start_a_line():
    kinds = {text: piece_kind(text) for text in ("\n", "4c\n", "=", "=:|!", "*-", "*v", "*^",
                                                 "*clefG2", "!LO", "4c", ".", "\t")}  # fmt: skip
    assert kinds == {"\n": NEWLINE, "4c\n": TEXT, "=": BAR, "=:|!": BAR, "*-": END,
                     "*v": MERGE, "*^": INTERPRETATION, "*clefG2": INTERPRETATION,
                     "!LO": COMMENT, "4c": TEXT, ".": TEXT, "\t": TEXT}  # fmt: skip
    budget = MeasureBudget.for_tokenizer(Pieces(), EOS_ID)
    assert budget.kinds[EOS_ID] == EOS and budget.kinds[9] == TEXT  # 9 % 8 == 1, not the EOS id
    assert [budget.ends_line[i] for i in range(8)] == [False, False, True, False, False, True,
                                                        False, False]  # fmt: skip


def _allowed(budget, state, row=0):
    logits = budget(state, jnp.zeros((len(state["low"]), len(budget.kinds))))
    allowed = np.isfinite(np.asarray(logits[row]))
    return {Pieces.PIECES[i] for i in range(8) if allowed[i]}


def _feed(budget, state, text_ids):
    for token in text_ids:
        state = budget.update(state, jnp.asarray([token] * len(state["low"])))
    return state


def test_a_full_staff_may_only_merge_or_end_its_spines():
    budget = MeasureBudget.for_tokenizer(Pieces(), EOS_ID)
    state = {k: jnp.asarray(v) for k, v in budget.rows([(0, 2)]).items()}
    state = _feed(budget, state, [4, 2, 3, 2])  # 4c \n = \n: one measure closed
    assert {"4c", "=", "*-"} <= _allowed(budget, state)
    state = _feed(budget, state, [5, 5])  # 8d\n 8d\n: the second measure, open
    assert {"4c", "=", "*-"} <= _allowed(budget, state)  # it may go on or close
    state = _feed(budget, state, [3, 2])  # = \n: two closed
    assert int(state["closed"][0]) == 2
    assert _allowed(budget, state) == {"", "*-", "*v"}  # "" is the EOS id (1)
    state = _feed(budget, state, [7])  # mid-line: anything
    assert {"4c", "=", "\n"} <= _allowed(budget, state)


def test_a_short_staff_may_not_end():
    budget = MeasureBudget.for_tokenizer(Pieces(), EOS_ID)
    state = {k: jnp.asarray(v) for k, v in budget.rows([(2, 3), None]).items()}
    state = _feed(budget, state, [4, 2, 3, 2])  # one measure
    assert "*-" not in _allowed(budget, state, row=0)
    assert not np.isfinite(np.asarray(budget(state, jnp.zeros((2, 256))))[0, EOS_ID])
    assert "*-" in _allowed(budget, state, row=1)  # unbounded row
    state = _feed(budget, state, [4, 2])  # data of the second measure: it counts as written
    assert "*-" in _allowed(budget, state, row=0)


def test_bounds_must_be_ordered():
    with pytest.raises(ValueError, match="low <= high"):
        MeasureBudget.for_tokenizer(Pieces(), EOS_ID).rows([(3, 2)])


@pytest.mark.parametrize("strategy", [Sampling(temperature=1.0), BeamSearch(width=2)])
def test_the_random_tiny_model_writes_no_more_measures_than_each_rows_bound(tiny, strategy):
    """(Greedy decoding of the random model repeats one token; sampling writes measures.)"""
    budget = MeasureBudget.for_tokenizer(Pieces(), EOS_ID)
    options = {"strategy": strategy}
    free = generate(tiny.params, tiny.config, tiny.images, PROMPTS, max_new_tokens=48,
                    eos_id=EOS_ID, **options)  # fmt: skip
    counts = [len(parse(Pieces().decode(r.tokens)).measures) for r in free]
    if isinstance(strategy, Sampling):
        assert max(counts) >= 2, "the unbounded model must write measures for this test to bite"
    before = compiled_variants()
    for bounds in ([(0, 1), (0, 0), None], [(0, 0), None, (0, 1)]):
        results = generate(tiny.params, tiny.config, tiny.images, PROMPTS, max_new_tokens=48,
                           eos_id=EOS_ID, logit_mask=budget, mask_state=budget.rows(bounds),
                           **options)  # fmt: skip
        for bound, result, unbounded in zip(bounds, results, free, strict=True):
            written = len(parse(Pieces().decode(result.tokens)).measures)
            if bound is None:
                assert result.tokens == unbounded.tokens
            else:
                assert written <= bound[1]
    assert compiled_variants() - before <= 1  # other bounds: no recompilation


def test_a_mask_state_needs_its_mask_and_one_row_per_prompt(tiny):
    budget = MeasureBudget.for_tokenizer(Pieces(), EOS_ID)
    with pytest.raises(UsageError, match="without a logit mask"):
        generate(tiny.params, tiny.config, tiny.images, PROMPTS, max_new_tokens=2, eos_id=1,
                 mask_state=budget.rows([None] * 3))  # fmt: skip
    with pytest.raises(UsageError, match="2 rows for 3 prompts"):
        generate(tiny.params, tiny.config, tiny.images, PROMPTS, max_new_tokens=2, eos_id=1,
                 logit_mask=budget, mask_state=budget.rows([None] * 2))  # fmt: skip

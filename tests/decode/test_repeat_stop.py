"""The repetition stop: the period rule on crafted rows, and the decode loop against it."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from omrgemma.decode import BeamSearch, generate
from omrgemma.repeat_stop import RepeatStop, newest_first, period, trimmed_length

from .tinymodel import NEVER, PROMPTS

STOP = RepeatStop(max_period=4, repeats=3)


def _period(ids, stop=STOP) -> int:
    return int(period(newest_first(ids, stop), stop)[0])


def test_a_block_written_repeats_times_in_a_row_has_its_period():
    assert _period([7, 1, 2, 1, 2, 1, 2]) == 2
    assert _period([5, 5, 5]) == 1
    assert _period([9, 1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3, 4]) == 4
    assert _period([5, 5, 5, 5, 5, 5]) == 1  # the smallest period wins


def test_fewer_copies_longer_blocks_and_broken_runs_do_not_count():
    assert _period([1, 2, 1, 2]) == 0  # two copies, three needed
    assert _period([1, 2, 3, 4, 5, 1, 2, 3, 4, 5, 1, 2, 3, 4, 5]) == 0  # a block of 5 > 4
    assert _period([5, 5, 6, 5]) == 0
    assert _period([]) == 0


def test_repetitive_real_music_does_not_stop_under_the_default_rule():
    """Staves that repeat the most, in the shipped tokenizer's ids: eight bars of one Alberti
    figure in sixteenths, eight whole-bar rests, a bar of eight repeated eighths."""
    from pathlib import Path

    from omrgemma.kerntok import load_processor

    root = Path(__file__).resolve().parents[2]
    sp = load_processor((root / "models" / "omrgemma-small" / "tokenizer.model").read_bytes())
    head = "**kern\n*clefF4\n*k[]\n*M4/4\n"
    alberti = "16CLL\n16G\n16E\n16GJJ\n" * 4 + "=\n"
    staves = [head + alberti * 8 + "*-\n", head + "1r\n=\n" * 8 + "*-\n",
              head + "8c\n" * 8 + "=\n" + "*-\n"]  # fmt: skip
    for staff in staves:
        ids = sp.encode(staff)
        assert all(_period(ids[:end], RepeatStop()) == 0 for end in range(1, len(ids) + 1))
        assert trimmed_length(ids, RepeatStop()) == len(ids)


def test_numpy_and_jax_agree_row_by_row():
    rng = np.random.default_rng(0)
    rows = rng.integers(0, 3, size=(64, STOP.window))
    rows[::3, : STOP.window // 2] = -1  # short rows
    np.testing.assert_array_equal(period(rows, STOP), np.asarray(period(jnp.asarray(rows), STOP)))
    assert (period(rows, STOP) > 0).any() and (period(rows, STOP) == 0).any()


def test_trimming_keeps_the_first_copy_of_every_repeat():
    assert trimmed_length([7, 1, 2, 1, 2, 1, 2], STOP) == 3
    assert trimmed_length([7] + [1, 2] * 5, STOP) == 3  # five copies: trimmed twice, one left
    assert trimmed_length([7, 8, 9], STOP) == 3


def test_rule_is_checked():
    with pytest.raises(ValueError, match="repeats >= 2"):
        RepeatStop(repeats=1)


def _first_stop(ids: tuple[int, ...], stop: RepeatStop) -> int | None:
    """Where the loop must stop a row decoded without the rule: the first index completing
    `repeats` copies of a block."""
    for end in range(1, len(ids) + 1):
        if _period(ids[:end], stop):
            return end
    return None


def test_the_loop_stops_a_row_where_the_rule_fires_and_keeps_one_copy(tiny):
    """Greedy on random weights repeats itself; with the rule each row is the unguarded row up to
    where the rule first fires, less the extra copies; rows it never fires on are unchanged."""
    options = dict(max_new_tokens=48, eos_id=NEVER)
    free = generate(tiny.params, tiny.config, tiny.images, PROMPTS, **options, repeat_stop=None)
    guarded = generate(tiny.params, tiny.config, tiny.images, PROMPTS, **options, repeat_stop=STOP)
    stopped = 0
    for row, (a, b) in enumerate(zip(free, guarded, strict=True)):
        end = _first_stop(a.tokens, STOP)
        if end is None:
            assert b.tokens == a.tokens and not b.stopped_on_repeat, row
            continue
        stopped += 1
        kept = trimmed_length(a.tokens[:end], STOP)
        assert b.tokens == a.tokens[:kept] and b.stopped_on_repeat, row
        np.testing.assert_allclose(b.logprobs, a.logprobs[:kept], atol=1e-5)
        assert not b.stopped_on_eos
    assert stopped, "no row repeated itself: the test checks nothing"


def test_beam_search_output_is_trimmed_after_decoding(tiny):
    options = dict(max_new_tokens=48, eos_id=NEVER, strategy=BeamSearch(width=2))
    free = generate(tiny.params, tiny.config, tiny.images, PROMPTS, **options, repeat_stop=None)
    guarded = generate(tiny.params, tiny.config, tiny.images, PROMPTS, **options, repeat_stop=STOP)
    for a, b in zip(free, guarded, strict=True):
        kept = trimmed_length(a.tokens, STOP)
        assert b.tokens == a.tokens[:kept]
        assert b.stopped_on_repeat == (kept < len(a.tokens))

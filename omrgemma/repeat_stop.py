"""Stop a decoded row that is stuck repeating itself, and cut the repeats off.

A small model that loses its place on a staff can write the same line (`.\\t16c\\n`) hundreds of
times, until the token budget: seconds of wasted decoding per staff and an error rate far above
100 % for the system. Real kern does not do that within one staff's system: beams, barlines and
changing pitches break any short block long before it has come back `repeats` times in a row.

    stop = RepeatStop(max_period=16, repeats=16)
    period(recent, stop)              # recent i32[B, W], newest token first, -1 where none
    trimmed_length(ids, stop)         # the row's length with the repeats after the first cut

`period` works on NumPy or JAX arrays alike (the decode loop calls it at every step, on the
window of the newest `stop.window` tokens); it gives each row the smallest p such that the last
p * repeats tokens are p-periodic, or 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True, kw_only=True)
class RepeatStop:
    """A block of at most `max_period` tokens written `repeats` times in a row stops the row."""

    max_period: int = 16
    repeats: int = 16

    def __post_init__(self) -> None:
        if self.max_period < 1 or self.repeats < 2:
            raise ValueError(
                f"RepeatStop needs max_period >= 1 and repeats >= 2, got {self.max_period}, "
                f"{self.repeats}"
            )

    @property
    def window(self) -> int:
        """Tokens to look back over: the longest block times its repeats."""
        return self.max_period * self.repeats


DEFAULT = RepeatStop()


def period(recent: Any, stop: RepeatStop) -> Any:
    """i32[B, W >= stop.window] newest-first tokens (-1: before the start) -> i32[B] period or 0."""
    xp = np if isinstance(recent, np.ndarray) else _jnp()
    found = xp.zeros(recent.shape[0], xp.int32)
    for p in range(stop.max_period, 0, -1):  # descending, so the smallest period wins
        span = p * (stop.repeats - 1)
        earlier = recent[:, p : p + span]
        same = (recent[:, :span] == earlier) & (earlier >= 0)
        found = xp.where(same.all(axis=1), p, found)
    return found


def newest_first(ids: Any, stop: RepeatStop) -> np.ndarray:
    """The last `stop.window` ids of one row, newest first, padded with -1: i32[1, window]."""
    tail = np.asarray(ids, np.int64)[::-1][: stop.window]
    out = np.full((1, stop.window), -1, np.int64)
    out[0, : tail.size] = tail
    return out


def trimmed_length(ids: Any, stop: RepeatStop) -> int:
    """len(ids) less the copies of a block repeating at its end (the first copy kept)."""
    length = len(ids)
    while p := int(period(newest_first(ids[:length], stop), stop)[0]):
        length -= p * (stop.repeats - 1)
    return length


def _jnp():
    import jax.numpy as jnp

    return jnp

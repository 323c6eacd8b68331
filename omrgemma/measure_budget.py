"""Decode a staff with no more measures than its image shows: a logit mask on the barlines.

A staff model trained on 1-4 measures misjudges longer staves: on the first 48 systems of
`real-scans-dev` (stage 8, four to ten measures each) both staves wrote the reference's measure
count in 3 systems, while the barlines counted in the image (`omrgemma.pipeline.barlines`) gave
it in 43. `MeasureBudget` lets each row write between `low` and `high` measures:

    budget = MeasureBudget.for_tokenizer(tokenizer, eos_id)
    state = budget.rows([(0, 5), None])          # row 0: at most five measures; row 1: free
    generate(..., logit_mask=budget, mask_state=state)

The reader uses only the upper bound (`Recognizer.recognize(..., measures=)`). On those 48
systems, SER was 54.5 % unbounded, 54.0 % with at most the counted measures and 59.2 % with
exactly that many: made to go on where it would have stopped, the model writes mostly wrong
music (session 8 had found the same on GrandStaff-like staves). On the first 200 systems of
`real-scans-dev` the upper bound took SER from 62.6 to 58.5 % (note F1 0.043 -> 0.047).

A measure is what `omrgemma.kern.parse` counts: data lines up to a barline (or the end). The
state follows lines through the pieces: after a piece that ends with a newline a line starts; there
a piece opening with `=` is a barline (it closes the measure when data came since the
last one), one opening with `*-` ends the spines and one with `*v` merges split ones, other `*`
and `!` pieces are interpretations and comments, anything else starts a data line. Once `high`
measures are closed, a line may only start by merging spines or ending them (a model kept from
its next measure otherwise writes interpretations without end); until `low` are written,
neither `*-` nor EOS may come.

The pieces are classified once from the vocabulary (how each starts a line, and whether it ends
one), so the mask is exact for tokenizers whose pieces hold at most one line's end, at their end
(ours, `omrgemma.kerntok`, has the newline as a piece of its own); a piece with a newline inside
it counts only for the line it starts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import jax.numpy as jnp
import numpy as np

TEXT, NEWLINE, BAR, INTERPRETATION, END, MERGE, COMMENT, EOS = range(8)
FREE = -1  # a bound that does not apply
PyTree = Any


def piece_kind(text: str) -> int:
    """The kind of a piece of decoded text, as it acts at the start of a line."""
    if text.startswith("\n"):
        return NEWLINE
    if text.startswith("*-"):
        return END
    if text.startswith("*v"):
        return MERGE
    for prefix, kind in (("=", BAR), ("*", INTERPRETATION), ("!", COMMENT)):
        if text.startswith(prefix):
            return kind
    return TEXT


@dataclasses.dataclass(frozen=True, kw_only=True)
class MeasureBudget:
    """A `omrgemma.decode.LogitMask` bounding each row's measure count (module docstring).

    kinds: per vocabulary id, the piece's kind (`piece_kind`; EOS for the end-of-sequence id).
    ends_line: per vocabulary id, whether the piece ends with a newline.
    """

    kinds: tuple[int, ...]
    ends_line: tuple[bool, ...]

    @classmethod
    def for_tokenizer(cls, tokenizer: Any, eos_id: int) -> MeasureBudget:
        """Kinds from the text each id decodes to on its own."""
        texts = [tokenizer.decode([i]) for i in range(tokenizer.vocab_size)]
        kinds = [piece_kind(text) for text in texts]
        kinds[eos_id] = EOS
        return cls(kinds=tuple(kinds), ends_line=tuple(text.endswith("\n") for text in texts))

    def rows(self, bounds: Sequence[tuple[int, int] | None]) -> dict[str, np.ndarray]:
        """The starting state of rows with (low, high) measure bounds, None: unbounded."""
        for bound in bounds:
            if bound is not None and not 0 <= bound[0] <= bound[1]:
                raise ValueError(f"measure bounds need 0 <= low <= high, got {bound}")
        state = _fresh(len(bounds))
        state["low"] = np.array([b[0] if b else 0 for b in bounds], np.int32)
        state["high"] = np.array([b[1] if b else FREE for b in bounds], np.int32)
        return state

    def init_state(self, batch: int) -> PyTree:
        return {key: jnp.asarray(value) for key, value in _fresh(batch).items()}

    def update(self, state: PyTree, tokens: Any) -> PyTree:
        kind = jnp.asarray(self.kinds, jnp.int32)[tokens]
        start, open_ = state["line_start"], state["open"]
        closes = start & (kind == BAR) & open_
        opens = start & (kind == TEXT)
        return dict(
            state,
            line_start=jnp.asarray(self.ends_line)[tokens] | (start & (kind == EOS)),
            open=(open_ & ~closes) | opens,
            closed=state["closed"] + closes.astype(jnp.int32),
        )

    def __call__(self, state: PyTree, logits: Any) -> Any:
        kind = jnp.asarray(self.kinds, jnp.int32)[None, :]
        start, open_ = state["line_start"][:, None], state["open"][:, None]
        closed, low, high = state["closed"][:, None], state["low"][:, None], state["high"][:, None]
        full = (high != FREE) & ~open_ & (closed >= high)
        short = closed + open_ < low
        closing = (kind == END) | (kind == MERGE) | (kind == EOS)
        forbid = start & full & ~closing  # no new measure, no barline, no other line
        forbid |= short & ((kind == EOS) | (start & (kind == END)))
        return jnp.where(forbid, -jnp.inf, logits)


def _fresh(batch: int) -> dict[str, np.ndarray]:
    return dict(
        line_start=np.ones(batch, bool),
        open=np.zeros(batch, bool),
        closed=np.zeros(batch, np.int32),
        low=np.zeros(batch, np.int32),
        high=np.full(batch, FREE, np.int32),
    )


__all__ = ["FREE", "MeasureBudget", "piece_kind"]

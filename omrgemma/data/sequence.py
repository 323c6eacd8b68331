"""The PaliGemma text layout for training: `<bos> prefix <sep> suffix <eos> <pad>...`.

    tokens     [bos] prefix... [sep] suffix... [eos] [pad]...
    mask_ar     0     0 ...     0     1 ...     1     1 ...    0: bidirectional prefix, 1: causal
    mask_loss   0     0 ...     0     1 ...     1     0 ...    loss on the suffix and <eos> only
    input_mask  1     1 ...     1     1 ...     1     0 ...    padding is invisible

(The image tokens come before all of this inside the model, with mask_ar 0.) The separator is
tokenized on its own so it cannot merge with the prompt (PaliGemma §3.1); with Gemma's tokenizer it
is the "\\n" piece, with our kern tokenizer the newline user symbol. Text lengths are padded to a
few buckets so the jitted step compiles once per bucket, not once per length.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, kw_only=True)
class SpecialIds:
    """The ids the layout needs from a tokenizer."""

    pad: int
    bos: int
    eos: int
    sep: int


def layout(
    prefix: Sequence[int], suffix: Sequence[int], ids: SpecialIds, text_len: int
) -> dict[str, np.ndarray] | None:
    """One example as int32[text_len] arrays (`tokens`, `mask_ar`, `mask_loss`, `input_mask`).

    Returns None when the example does not fit in `text_len`: a cut-off kern target would teach
    the model to stop mid-measure, so over-long examples are dropped, never truncated.
    """
    head = [ids.bos, *prefix, ids.sep]
    tail = [*suffix, ids.eos]
    used = len(head) + len(tail)
    if used > text_len:
        return None
    pad = text_len - used
    tokens = np.asarray(head + tail + [ids.pad] * pad, np.int32)
    mask_ar = np.asarray([0] * len(head) + [1] * (len(tail) + pad), np.int32)
    mask_loss = np.asarray([0] * len(head) + [1] * len(tail) + [0] * pad, np.int32)
    input_mask = np.asarray([1] * used + [0] * pad, np.int32)
    return {"tokens": tokens, "mask_ar": mask_ar, "mask_loss": mask_loss, "input_mask": input_mask}


def bucket_for(length: int, buckets: Sequence[int]) -> int | None:
    """The smallest bucket that holds `length` tokens, or None when none does."""
    for size in sorted(buckets):
        if length <= size:
            return size
    return None

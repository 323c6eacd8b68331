"""A SentencePiece tokenizer made for **kern, trained on normalised training kern.

Kern is a small language: about 80 characters, short tokens (`4.cc#L`, `8BB-/J`), tabs between
spines and newlines between records. A general-purpose tokenizer (Gemma's 256k pieces) spends
most of its vocabulary on text we never emit, and its pieces do not respect kern's structure.
This module trains a BPE model with the `sentencepiece` trainer:

- tab and newline are `user_defined_symbols`, so they round-trip exactly and are always pieces
  of their own (a piece never spans two spines or two records); so are the frequent
  interpretations and barlines (`*clefG2`, `*k[b-e-]`, `*M3/4`, `=||`): one piece each;
- pieces may join digits, letters and signs (`8cc#`, `4.dd\\L`): sentencepiece's default
  number and script splitting is switched off, which shortens sequences by a fifth;
- no normalisation, no dummy prefix, no whitespace folding: `decode(encode(s)) == s` for every
  string over the training character set;
- special ids match Gemma's (pad 0, eos 1, bos 2, unk 3), so the same code serves both; the
  separator between task prefix and suffix is the newline piece, as in PaliGemma.

The result is a standard `tokenizer.model` that `omrgemma.tokenizer` loads like Gemma's.
"""

from __future__ import annotations

import collections
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

PAD_ID, EOS_ID, BOS_ID, UNK_ID = 0, 1, 2, 3
# Kept as whole pieces so they survive and never merge with neighbours.
USER_SYMBOLS = ("\t", "\n")
# The symbol-level unit split of docs/cpu-learning-curve.md, used only to compare lengths.
_SYMBOL_UNIT = re.compile(r"\d+|([a-gA-G])\1*|\S")


@dataclass(frozen=True, kw_only=True)
class KernTokenizerSpec:
    """How to train the kern tokenizer. `vocab_size` counts specials and user symbols."""

    vocab_size: int = 512
    model_type: str = "bpe"  # "bpe" or "unigram"
    max_sentence_length: int = 16384
    symbol_min_count: int = 10  # interpretations/barlines this frequent become single pieces


def train_kern_tokenizer(texts: Iterable[str], spec: KernTokenizerSpec | None = None) -> bytes:
    """Train a SentencePiece model on kern `texts` (one snippet each); return `tokenizer.model` bytes.

    Every character of the training text gets a piece (`character_coverage=1.0`); a character
    never seen in training maps to `<unk>`.
    """
    import sentencepiece as spm

    spec = spec or KernTokenizerSpec()
    # Each snippet is one "sentence", newlines and all, fed through an iterator.
    sentences = [t for t in texts if t]
    if not sentences:
        raise ValueError("no kern text to train the tokenizer on")
    symbols = frequent_symbols(sentences, spec.symbol_min_count)
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences),
        model_writer=model,
        vocab_size=spec.vocab_size,
        model_type=spec.model_type,
        character_coverage=1.0,
        user_defined_symbols=list(USER_SYMBOLS) + symbols,
        normalization_rule_name="identity",
        add_dummy_prefix=False,
        remove_extra_whitespaces=False,
        split_by_whitespace=True,
        split_digits=False,
        split_by_number=False,
        split_by_unicode_script=False,
        max_sentencepiece_length=16,
        byte_fallback=False,
        max_sentence_length=spec.max_sentence_length,
        pad_id=PAD_ID,
        eos_id=EOS_ID,
        bos_id=BOS_ID,
        unk_id=UNK_ID,
        hard_vocab_limit=False,
        num_threads=1,
        minloglevel=2,
    )
    return model.getvalue()


def frequent_symbols(texts: Iterable[str], min_count: int) -> list[str]:
    """Interpretation and barline tokens (`*…`, `=…`) seen at least `min_count` times, most
    frequent first (ties by name, so the list is deterministic)."""
    counts: collections.Counter[str] = collections.Counter()
    for text in texts:
        for line in text.split("\n"):
            counts.update(f for f in line.split("\t") if f.startswith(("*", "=")) and len(f) > 1)
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return [symbol for symbol, n in ranked if n >= min_count]


def load_processor(model_bytes: bytes):
    """A `sentencepiece.SentencePieceProcessor` for serialized model bytes."""
    import sentencepiece as spm

    return spm.SentencePieceProcessor(model_proto=model_bytes)


def symbol_units(text: str) -> int:
    """Number of units of the symbol-level tokenizer (one per line break and spine tab too)."""
    units = 0
    for line in text.split("\n"):
        for field in line.split("\t"):
            for token in field.split(" "):
                if token.startswith(("*", "=")):
                    units += 1  # interpretations and barlines are one unit each
                else:
                    units += sum(1 for _ in _SYMBOL_UNIT.finditer(token))
            units += 1  # the tab, space or newline after it
    return units


def length_stats(lengths: Iterable[int]) -> dict[str, float]:
    """Mean, median, 95th and 99th percentile and max of sequence lengths."""
    arr = np.asarray(list(lengths), dtype=np.float64)
    return {
        "mean": float(arr.mean()),
        "median": float(np.median(arr)),
        "p95": float(np.percentile(arr, 95)),
        "p99": float(np.percentile(arr, 99)),
        "max": float(arr.max()),
    }

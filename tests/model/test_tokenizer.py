"""The SentencePiece wrapper, on tiny models trained in memory (no files, no downloads)."""

from __future__ import annotations

import io

import pytest
import sentencepiece as spm

from omrgemma.errors import ModelError
from omrgemma.tokenizer import Tokenizer

LINES = ["4c 4e 4g", "8d 8f 8a", "=1 =2", "2r 4cc 4dd", "*clefG2 *M4/4"] * 20


def train(**options) -> bytes:
    """A tiny BPE model; `options` override the PaliGemma-like special ids."""
    settings = dict(
        model_type="bpe", vocab_size=60, pad_id=0, eos_id=1, bos_id=2, unk_id=3,
        user_defined_symbols=["\n", "<loc0000>", "<loc0001>", "<seg000>"],
        character_coverage=1.0, hard_vocab_limit=False,
    )  # fmt: skip
    settings.update(options)
    buffer = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(LINES), model_writer=buffer, **settings)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    return Tokenizer.from_bytes(train())


def test_special_ids_come_from_the_model(tokenizer):
    assert (tokenizer.pad_id, tokenizer.eos_id, tokenizer.bos_id) == (0, 1, 2)
    assert tokenizer.sep_id == 4  # first user symbol after pad/eos/bos/unk
    assert tokenizer.id_to_piece(tokenizer.sep_id) == "\n"
    assert tokenizer.loc_id(0) == 5 and tokenizer.loc_id(1) == 6 and tokenizer.seg_id(0) == 7
    assert tokenizer.loc_id(2) is None


def test_other_special_ids_are_followed():
    other = Tokenizer.from_bytes(
        train(pad_id=3, eos_id=2, bos_id=1, unk_id=0, user_defined_symbols=["<x>", "\n"])
    )
    assert (other.pad_id, other.eos_id, other.bos_id, other.sep_id) == (3, 2, 1, 5)


def test_encode_prefix_tokenises_the_separator_apart(tokenizer):
    ids = tokenizer.encode_prefix("4c 4e")
    assert ids[0] == tokenizer.bos_id and ids[-1] == tokenizer.sep_id
    assert ids[1:-1] == tokenizer.encode("4c 4e")
    assert tokenizer.sep_id not in ids[1:-1]


def test_decode_stops_at_the_first_eos(tokenizer):
    body = tokenizer.encode("4c 4e 4g")
    ids = [tokenizer.bos_id, *body, tokenizer.eos_id, *tokenizer.encode("8d"), tokenizer.pad_id]
    assert tokenizer.decode(ids) == "4c 4e 4g"
    assert tokenizer.decode([*body, 10_000]) == "4c 4e 4g"  # padding rows beyond the vocab
    assert tokenizer.decode(tokenizer.encode_suffix("=1")) == "=1"


def test_load_from_a_model_directory(tmp_path, tokenizer):
    (tmp_path / "tokenizer.model").write_bytes(tokenizer.model_proto)
    loaded = Tokenizer.load(tmp_path)
    assert loaded.vocab_size == tokenizer.vocab_size
    assert loaded.encode("4c 4e") == tokenizer.encode("4c 4e")


def test_missing_separator_or_file_is_a_model_error(tmp_path):
    with pytest.raises(ModelError, match="separator"):
        Tokenizer.from_bytes(train(user_defined_symbols=[]))
    with pytest.raises(ModelError, match="tokenizer"):
        Tokenizer.load(tmp_path / "nothing.model")
    with pytest.raises(ModelError, match="no pad"):
        Tokenizer.from_bytes(train(pad_id=-1, user_defined_symbols=["\n"]))

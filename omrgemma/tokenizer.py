"""SentencePiece tokenizer with PaliGemma's special tokens.

Works with the official PaliGemma `tokenizer.model` (pad 0, eos 1, bos 2, "\\n" 108,
`<loc0000>` = 256000 + i, `<seg000>` = 257024 + i) and with our own SentencePiece models: the
ids of bos/eos/pad and of the "\\n" separator are always read from the model, never assumed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import sentencepiece as spm

from omrgemma.errors import ModelError

SEPARATOR = "\n"  # between prefix (prompt) and suffix (answer), tokenised on its own


class Tokenizer:
    """A loaded SentencePiece model plus the PaliGemma conventions around it."""

    def __init__(self, processor: spm.SentencePieceProcessor, *, source: str = "<memory>"):
        self._sp = processor
        self.source = source
        self.bos_id = self._special(processor.bos_id(), "<bos>", "bos")
        self.eos_id = self._special(processor.eos_id(), "<eos>", "eos")
        self.pad_id = self._special(processor.pad_id(), "<pad>", "pad")
        self.sep_id = self._separator_id()

    @classmethod
    def load(cls, path: str | Path) -> Tokenizer:
        """Load a `.model` file, or the `tokenizer.model` inside a model directory."""
        path = Path(path)
        if path.is_dir():
            path = path / "tokenizer.model"
        try:
            data = path.read_bytes()
        except OSError as error:
            raise ModelError(f"cannot read the tokenizer: {error.strerror}", path=path) from error
        return cls.from_bytes(data, source=str(path))

    @classmethod
    def from_bytes(cls, model_proto: bytes, *, source: str = "<memory>") -> Tokenizer:
        processor = spm.SentencePieceProcessor()
        try:
            processor.LoadFromSerializedProto(model_proto)
        except (RuntimeError, OSError) as error:
            raise ModelError(f"not a SentencePiece model: {error}", path=source) from error
        return cls(processor, source=source)

    def _special(self, model_id: int, piece: str, what: str) -> int:
        if model_id >= 0:
            return model_id
        # Trainers that disable an id (-1) may still carry the piece as a user symbol.
        found = self._sp.piece_to_id(piece)
        if found != self._sp.unk_id() or piece == self._sp.id_to_piece(found):
            return found
        raise ModelError(
            f"the tokenizer has no {what} token",
            path=self.source,
            hint=f"train it with {what}_id set (or a {piece} user symbol)",
        )

    def _separator_id(self) -> int:
        found = self._sp.piece_to_id(SEPARATOR)
        if found != self._sp.unk_id():
            return found
        ids = self._sp.encode(SEPARATOR)
        if len(ids) == 1 and ids[0] != self._sp.unk_id():
            return ids[0]
        raise ModelError(
            "the tokenizer has no single token for the '\\n' separator",
            path=self.source,
            hint="train it with '\\n' as a user_defined_symbol",
        )

    @property
    def vocab_size(self) -> int:
        return self._sp.get_piece_size()

    @property
    def model_proto(self) -> bytes:
        """The serialized model, e.g. to save it next to the weights."""
        return self._sp.serialized_model_proto()

    def piece_to_id(self, piece: str) -> int | None:
        """The id of an exact piece, or None if the model does not have it."""
        found = self._sp.piece_to_id(piece)
        if found == self._sp.unk_id() and self._sp.id_to_piece(found) != piece:
            return None
        return found

    def loc_id(self, index: int) -> int | None:
        """Id of `<locNNNN>` (0..1023), None if the model has no location tokens."""
        return self.piece_to_id(f"<loc{index:04d}>")

    def seg_id(self, index: int) -> int | None:
        """Id of `<segNNN>` (0..127), None if the model has no segmentation tokens."""
        return self.piece_to_id(f"<seg{index:03d}>")

    def encode(self, text: str) -> list[int]:
        """Ids of `text`, without bos or eos."""
        return self._sp.encode(text)

    def encode_prefix(self, prompt: str) -> list[int]:
        """[bos] + ids(prompt) + [sep]: the separator is tokenised separately (PaliGemma §3.1),
        so it never merges with the end of the prompt."""
        return [self.bos_id, *self.encode(prompt), self.sep_id]

    def encode_suffix(self, text: str) -> list[int]:
        """ids(text) + [eos]: a training target."""
        return [*self.encode(text), self.eos_id]

    def decode(self, ids: Iterable[int]) -> str:
        """Text of `ids` up to (not including) the first eos; bos, pad and ids outside the
        vocabulary (e.g. embedding padding rows) are dropped."""
        kept: list[int] = []
        skip = {self.bos_id, self.pad_id}
        for i in ids:
            i = int(i)
            if i == self.eos_id:
                break
            if i not in skip and 0 <= i < self.vocab_size:
                kept.append(i)
        return self._sp.decode(kept)

    def decode_batch(self, batch: Sequence[Iterable[int]]) -> list[str]:
        return [self.decode(ids) for ids in batch]

    def id_to_piece(self, i: int) -> str:
        return self._sp.id_to_piece(int(i))

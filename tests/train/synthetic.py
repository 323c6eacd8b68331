"""Synthetic "scores" the stand-in model can learn in seconds: letters drawn as bars in columns.

Each example is 1-4 letters from a..h; letter number k (a=0) at position j is a bright row k in
column block j of an 8x16 image. The image alone determines the text, so a model that reads it
can reach zero loss, and one that ignores it cannot.
"""

from __future__ import annotations

import os

import numpy as np

from omrgemma.data.sequence import SpecialIds

LETTERS = "abcdefgh"
IDS = SpecialIds(pad=0, bos=2, eos=1, sep=3)
FIRST = 4  # id of "a"


def encode(text: str) -> list[int]:
    return [FIRST + LETTERS.index(c) for c in text]


def decode(ids) -> str:
    return "".join(LETTERS[i - FIRST] for i in ids if FIRST <= i < FIRST + len(LETTERS))


def draw(text: str, scale: int = 1) -> np.ndarray:
    """uint8[8*scale, 16*scale]: letter k at position j is a black bar in row k, columns 4j..4j+3."""
    image = np.full((8, 16), 255, np.uint8)
    for j, c in enumerate(text):
        image[LETTERS.index(c), 4 * j : 4 * j + 4] = 0
    return np.kron(image, np.ones((scale, scale), np.uint8))


class LetterMaker:
    """Picklable example maker: a random word of 1-`longest` letters and its drawing."""

    def __init__(self, longest: int = 4, size: int | None = None) -> None:
        self.longest, self.size = longest, size

    def __call__(self, rng: np.random.Generator):
        n = int(rng.integers(1, self.longest + 1))
        text = "".join(LETTERS[i] for i in rng.integers(0, len(LETTERS), n))
        if self.size is None:
            return draw(text), text
        # square model input: the 8x16 drawing scaled up and padded with white at the bottom
        image = np.full((self.size, self.size), 255, np.uint8)
        drawn = draw(text, self.size // 16)
        image[: drawn.shape[0], : drawn.shape[1]] = drawn
        return image, text


class CrashingLetterMaker(LetterMaker):
    """A LetterMaker that kills any process but the one that made it: a rendering worker crash."""

    def __init__(self) -> None:
        super().__init__()
        self.home = os.getpid()

    def __call__(self, rng: np.random.Generator):
        if os.getpid() != self.home:
            os._exit(3)
        return super().__call__(rng)

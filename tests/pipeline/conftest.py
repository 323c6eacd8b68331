"""Fixtures for the pipeline tests: a tiny random model directory and the bundled samples.

The model is `omrgemma.config.TINY` (28-pixel images, vocab 256) with random weights and a
SentencePiece kern tokenizer trained here on the samples' kern. Its transcriptions are random
kern pieces, which is the point: the pipeline must still stitch, repair, mark, convert and
record them without losing an input.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "samples" / "images"
SCAN_SAMPLE = SAMPLES / "mapleleaf-p1-systems1-2.png"
RENDERED_SAMPLE = SAMPLES / "chopin-op1-rondo-system1.png"


def make_tiny_model(directory: Path, *, max_new_tokens: int = 48, seed: int = 0) -> Path:
    """Write a TINY random model dir (config, weights, tokenizer, inference.json) to `directory`."""
    import json

    import jax

    from omrgemma.checkpoint import save_model_dir
    from omrgemma.config import TINY
    from omrgemma.kerntok import KernTokenizerSpec, train_kern_tokenizer
    from omrgemma.nn.paligemma import init_params

    texts = [p.read_text(encoding="utf-8") for p in sorted(SAMPLES.glob("*.krn"))]
    lines = [line for text in texts for line in text.splitlines()]
    chunks = ["\n".join(lines[i : i + 6]) for i in range(0, len(lines), 3)]
    tokenizer = train_kern_tokenizer(chunks, KernTokenizerSpec(vocab_size=TINY.vocab_size))
    params = init_params(TINY, jax.random.key(seed))
    save_model_dir(directory, params, TINY, tokenizer=tokenizer, force=True)
    (directory / "inference.json").write_text(json.dumps({"max_new_tokens": max_new_tokens}))
    return directory


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    os.environ.setdefault("OMRGEMMA_CACHE", str(tmp_path_factory.mktemp("cache")))
    return make_tiny_model(tmp_path_factory.mktemp("models") / "tiny")


@pytest.fixture(scope="session")
def recognizer(tiny_model):
    from omrgemma.recognizer import load_recognizer

    return load_recognizer(tiny_model, device="cpu", batch_size=4)

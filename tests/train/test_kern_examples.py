"""Kern training examples: target text, image fit as inference, held-out guard, tokenizer."""

from __future__ import annotations

import numpy as np
import pytest

from omrgemma.data.kern_examples import (
    ExampleOptions,
    KernExamples,
    build_snippet_pool,
    fit_square,
    strip_measure_numbers,
)
from omrgemma.errors import UsageError
from omrgemma.kerntok import (
    BOS_ID,
    EOS_ID,
    PAD_ID,
    KernTokenizerSpec,
    load_processor,
    symbol_units,
    train_kern_tokenizer,
)

# The 4-bar F-major melody of docs/machine.md, measure numbers and all.
MELODY = (
    "**kern\n*clefG2\n*k[b-]\n*M3/4\n=1-\n4f\n8gL\n8aJ\n4b-\n=2\n4.cc\n8b-\n4a\n=3\n2.f\n==\n*-\n"
)
PIANO = "**kern\t**kern\n*clefF4\t*clefG2\n*M4/4\t*M4/4\n=12\t=12\n2GG 2G\t4d 4g 4b\n=13:|!\t=13:|!\n*-\t*-\n"


def test_measure_numbers_are_stripped_in_every_spine():
    assert "=1-" not in strip_measure_numbers(MELODY)
    assert "\n=-\n" in strip_measure_numbers(MELODY) and "\n=\n" in strip_measure_numbers(MELODY)
    assert "=\t=\n" in strip_measure_numbers(PIANO) and "=:|!\t=:|!" in strip_measure_numbers(PIANO)
    assert "2GG 2G\t4d 4g 4b" in strip_measure_numbers(PIANO)  # notes untouched


@pytest.mark.parametrize("shape", [(30, 400), (100, 60), (10, 10)])
def test_fit_square_matches_the_inference_crop(shape):
    from omrgemma.image.crops import fit_to

    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, shape, dtype=np.uint8)
    ours = fit_square(image, 64)
    theirs, _, _ = fit_to(image, 64, fit="pad")
    np.testing.assert_allclose(ours.astype(np.float32) / 127.5 - 1, theirs[..., 0], atol=1e-6)


def test_an_example_is_the_engraved_snippet():
    maker = KernExamples(
        pool=(strip_measure_numbers(MELODY),),
        options=ExampleOptions(image_size=96, camera_probability=0, scan_probability=0),
    )
    image, target = maker(np.random.default_rng(1))
    assert image.shape == (96, 96) and image.dtype == np.uint8
    assert target == strip_measure_numbers(MELODY)
    ink_rows = np.flatnonzero((image < 128).any(axis=1))
    ink_cols = np.flatnonzero((image < 128).any(axis=0))
    # a one-staff system, wider than tall, fitted to the full width and centred vertically
    assert ink_cols[-1] - ink_cols[0] > 80 and ink_rows[-1] - ink_rows[0] < 48
    assert abs((ink_rows[0] + ink_rows[-1]) / 2 - 48) < 12


def test_the_pool_refuses_held_out_movements(shared_data):
    from omrgemma.data.split import test_files, train_files

    held = test_files(shared_data, ["mono/foster-songs"])
    with pytest.raises(UsageError, match="held-out"):
        build_snippet_pool(held[:1], measures=(1, 2), cuts=1, seed=0)
    pool = build_snippet_pool(
        train_files(shared_data, ["mono/foster-songs"])[:2], measures=(1, 2), cuts=1, seed=0
    )
    assert pool and all(s.startswith("**kern\n") and s.rstrip().endswith("*-") for s in pool)


def test_kern_tokenizer_round_trips_and_keeps_structure_pieces():
    texts = [strip_measure_numbers(MELODY), strip_measure_numbers(PIANO)] * 20
    sp = load_processor(train_kern_tokenizer(texts, KernTokenizerSpec(vocab_size=120)))
    assert (sp.pad_id(), sp.eos_id(), sp.bos_id()) == (PAD_ID, EOS_ID, BOS_ID)
    for text in texts[:2]:
        ids = sp.encode(text)
        assert sp.decode(ids) == text
        pieces = [sp.id_to_piece(i) for i in ids]
        assert pieces.count("\n") == text.count("\n") and pieces.count("\t") == text.count("\t")
        assert "*clefG2" in pieces and "**kern" in pieces  # frequent interpretations: one piece
        assert len(ids) < symbol_units(text)

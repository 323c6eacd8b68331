"""Training examples at a non-square model input, e.g. 64 x 512 for one staff."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from omrgemma.data.kern_examples import (
    ExampleOptions,
    KernExamples,
    fit_image,
    strip_measure_numbers,
)
from omrgemma.data.pipeline import ShardStream, StreamSpec
from omrgemma.data.sequence import SpecialIds

# The 4-bar F-major melody of docs/machine.md (as in test_kern_examples.py).
MELODY = (
    "**kern\n*clefG2\n*k[b-]\n*M3/4\n=1-\n4f\n8gL\n8aJ\n4b-\n=2\n4.cc\n8b-\n4a\n=3\n2.f\n==\n*-\n"
)
IDS = SpecialIds(pad=0, bos=2, eos=1, sep=3)


def char_ids(text: str) -> list[int]:
    """A stand-in tokenizer: one id per character (above the special ids)."""
    return [4 + ord(c) % 120 for c in text]


def plain_options(size) -> ExampleOptions:
    return ExampleOptions(
        image_size=size, camera_probability=0, scan_probability=0, justify_probability=0
    )


def test_example_sizes_are_spelled_as_in_the_config():
    assert ExampleOptions(image_size=(64, 512)).image_size == (64, 512)
    assert ExampleOptions(image_size=[64, 512]).image_size == (64, 512)  # from run.json
    assert ExampleOptions(image_size=(160, 160)) == ExampleOptions()
    with pytest.raises(ValueError):
        ExampleOptions(image_size=(64, 0))


@pytest.mark.parametrize("shape", [(30, 400), (100, 60), (10, 10), (64, 512), (200, 900)])
def test_fit_image_matches_the_inference_crop_at_height_by_width(shape):
    from omrgemma.image.crops import fit_to

    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, shape, dtype=np.uint8)
    ours = fit_image(image, (64, 512))
    theirs, _, _ = fit_to(image, (64, 512), fit="pad")
    assert ours.shape == (64, 512) and ours.dtype == np.uint8
    np.testing.assert_allclose(ours.astype(np.float32) / 127.5 - 1, theirs[..., 0], atol=1e-6)
    # The square spellings give the same array.
    np.testing.assert_array_equal(fit_image(image, 96), fit_image(image, (96, 96)))


def _staff_spacing(image: np.ndarray) -> float:
    """Pixels between staff lines: the 5 darkest local row maxima across the ink's width."""
    cols = np.flatnonzero((image < 128).any(axis=0))
    dark = 255.0 - image[:, cols[0] : cols[-1] + 1].mean(axis=1)
    peaks = [i for i in range(1, len(dark) - 1) if dark[i - 1] < dark[i] >= dark[i + 1]]
    lines = sorted(sorted(peaks, key=lambda i: -dark[i])[:5])
    return (lines[-1] - lines[0]) / 4


def test_a_wide_input_keeps_staff_lines_further_apart_than_a_square_of_equal_pixels():
    maker = KernExamples(pool=(strip_measure_numbers(MELODY),), options=plain_options((48, 384)))
    wide, target = maker(np.random.default_rng(1))
    assert wide.shape == (48, 384) and target == strip_measure_numbers(MELODY)
    square = KernExamples(pool=maker.pool, options=plain_options(136))  # 136^2 ~ 48 * 384
    square_image, _ = square(np.random.default_rng(1))  # the same draws: font, scale
    assert square_image.shape == (136, 136)
    # Measured: 6.25 px between lines in 48 x 384 against 3 px in 136 x 136.
    assert _staff_spacing(wide) >= 5 and _staff_spacing(wide) >= 1.8 * _staff_spacing(square_image)
    rows = np.flatnonzero((wide < 128).any(axis=1))
    assert rows[-1] - rows[0] > 0.75 * 48  # the system fills the height


def test_a_non_square_batch_from_the_stream():
    from omrgemma.train_run import DataSettings, data_settings

    options = plain_options((48, 384))
    # run.json stores the examples as JSON; they come back with a (height, width) tuple.
    run = {"data": json.loads(json.dumps(dataclasses.asdict(DataSettings(examples=options))))}
    assert data_settings(run).examples == options
    maker = KernExamples(pool=(strip_measure_numbers(MELODY),), options=options)
    spec = StreamSpec(seed=0, batch_size=2, shard_size=2, text_buckets=(128,), special=IDS)
    stream = ShardStream(spec, maker, char_ids, workers=0)
    try:
        batch = stream.next_batch()
    finally:
        stream.close()
    assert batch["images"].shape == (2, 48, 384) and batch["images"].dtype == np.uint8
    assert batch["tokens"].shape[0] == 2
    assert (batch["images"] < 128).any(axis=(1, 2)).all()  # music on every image

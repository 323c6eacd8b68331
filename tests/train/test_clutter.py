"""Printed-edition clutter on staff renders: drawn around the staff, never over its lines,
fixed by the seed, label untouched, and stored with a run's settings."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from omrgemma.data.clutter import add_clutter, staff_lines
from omrgemma.data.kern_examples import ExampleOptions, KernExamples, trim_white
from omrgemma.data.render import render_system

# Two measures written for these tests: one staff, with a ledger-line note (4c) below it.
MELODY = "**kern\n*clefG2\n*k[b-]\n*M3/4\n4f\n8gL\n8aJ\n4b-\n=\n4.cc\n8b-\n4c\n=\n*-\n"
PIANO = "**kern\t**kern\n*clefF4\t*clefG2\n*M4/4\t*M4/4\n2GG 2G\t4d 4g 4b\n.\t4r\n2C\t2c\n=\t=\n*-\t*-\n"


@pytest.fixture(scope="module")
def staff() -> np.ndarray:
    return trim_white(render_system(MELODY, scale=60))


def test_the_five_staff_lines_are_found_evenly_spaced(staff):
    lines = staff_lines(staff)
    assert len(lines) == 5
    gaps = np.diff(lines)
    assert gaps.min() >= 0.8 * gaps.max() and gaps.min() > 5  # scale 60: ~13 px per space


@pytest.mark.parametrize("seed", range(12))
def test_clutter_goes_around_the_staff_and_keeps_its_lines(staff, seed):
    out = add_clutter(staff, np.random.default_rng(seed))
    assert out.dtype == np.uint8 and out.shape[0] > staff.shape[0]
    assert out.shape[1] >= staff.shape[1]
    shift = out.shape[0] - staff.shape[0]  # top + bottom margins
    found = staff_lines(out)
    lines = staff_lines(staff)
    # the staff's own five lines are still there, moved down by the top margin
    offsets = {f - lines[0] for f in found} & set(range(shift + 1))
    assert any(all(line + o in found for line in lines) for o in offsets), (found, lines)
    np.testing.assert_array_equal(out, add_clutter(staff, np.random.default_rng(seed)))


def test_most_draws_add_marks_outside_the_staff(staff):
    added = 0
    for seed in range(20):
        out = add_clutter(staff, np.random.default_rng(seed))
        added += int((out < 128).sum() > (staff < 128).sum() + 20)
    assert added >= 16


def test_a_render_without_one_staff_is_left_alone():
    grand = trim_white(render_system(PIANO, scale=60))
    assert len(staff_lines(grand)) == 10
    assert add_clutter(grand, np.random.default_rng(0)) is grand
    blank = np.full((40, 200), 255, np.uint8)
    assert add_clutter(blank, np.random.default_rng(0)) is blank


def test_examples_with_clutter_keep_their_label_and_grow_taller_than_clean_ones():
    def example(clutter: float) -> tuple[np.ndarray, str]:
        options = ExampleOptions(
            image_size=(64, 512), camera_probability=0, scan_probability=0,
            justify_probability=0, scales=(60, 60), fonts=("Leipzig",),
            clutter_probability=clutter,
        )  # fmt: skip
        result = KernExamples(pool=(MELODY,), options=options)(np.random.default_rng(3))
        assert result is not None
        return result

    clean, label = example(0.0)
    cluttered, cluttered_label = example(1.0)
    assert cluttered_label == label == MELODY

    def staff_height(image: np.ndarray) -> int:
        lines = staff_lines(trim_white(image))  # lines span the music's width, not the input's
        return lines[-1] - lines[0]

    # the margins that hold the marks shrink the staff in the model input, as a page cut does
    assert staff_height(cluttered) < staff_height(clean)


def test_the_clutter_share_is_kept_in_run_json_and_old_runs_read_as_none():
    from omrgemma import train_run

    data = train_run.DataSettings(examples=ExampleOptions(clutter_probability=0.4))
    raw = json.loads(json.dumps({"data": dataclasses.asdict(data)}))
    assert train_run.data_settings(raw).examples.clutter_probability == 0.4
    del raw["data"]["examples"]["clutter_probability"]  # a run.json written before the option
    assert train_run.data_settings(raw).examples.clutter_probability == 0.0

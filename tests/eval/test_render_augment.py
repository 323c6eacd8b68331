"""System rendering (in-process and crash-proof workers) and the seeded augmentations."""

from __future__ import annotations

import numpy as np

from omrgemma.data import render
from omrgemma.data.augment import augment_camera, augment_scan

# machine.md's 4-bar monophonic test melody (3/4, one flat), cut to two bars.
MELODY = "**kern\n*clefG2\n*k[b-]\n*M3/4\n=1-\n4f\n8gL\n8aJ\n4b-\n=2\n2.f\n==\n*-\n"


def test_render_system_is_greyscale_ink_on_white():
    image = render.render_system(MELODY)
    assert image.dtype == np.uint8 and image.ndim == 2
    assert image[0, 0] == 255  # white margin
    assert 0.02 < (image < 128).mean() < 0.5
    bigger = render.render_system(MELODY, scale=120)
    assert bigger.shape[0] > 1.5 * image.shape[0]


def test_fonts_change_the_engraving():
    leipzig = render.render_system(MELODY, font="Leipzig")
    bravura = render.render_system(MELODY, font="Bravura")
    assert leipzig.shape != bravura.shape or not np.array_equal(leipzig, bravura)


def test_safe_renderer_matches_in_process_and_survives_a_crash(monkeypatch):
    original = render._Worker.send

    def send(self, payload):  # simulate verovio killing its process on one snippet
        original(self, payload)
        if b"CRASH" in payload:
            self.process.kill()

    monkeypatch.setattr(render._Worker, "send", send)
    crashing = MELODY.replace("*clefG2", "*clefG2\n!! CRASH")
    with render.SafeRenderer(workers=1, timeout=20) as renderer:
        first, crashed, after = renderer.render_all([MELODY, crashing, MELODY])
    assert np.array_equal(first, render.render_system(MELODY))
    assert crashed is None
    assert np.array_equal(after, first)
    assert renderer.failures == 1


def test_augmentations_are_deterministic_and_change_the_image():
    image = render.render_system(MELODY)
    camera = augment_camera(image, np.random.default_rng(5))
    assert np.array_equal(camera, augment_camera(image, np.random.default_rng(5)))
    assert not np.array_equal(camera, augment_camera(image, np.random.default_rng(6)))
    assert camera.dtype == np.uint8 and camera.shape[0] > image.shape[0]  # a margin was added
    assert camera.mean() < image.mean()  # lighting and paper tone darken the white
    scan = augment_scan(image, np.random.default_rng(5))
    assert set(np.unique(scan)) <= {0, 255}  # 1-bit
    assert 0.01 < (scan == 0).mean() < 0.5

"""Degrade clean renders so they look photographed (Camera-GrandStaff style) or scanned.

Both functions take and return uint8[H, W] greyscale (0 black .. 255 white) and draw every
random choice from the numpy `Generator` they are given, so an example's augmentation is fixed by
its seed: `augment_camera(image, np.random.default_rng(seed))`.

- `augment_camera`: margin, perspective tilt, page curvature, blur (Gaussian or motion), uneven
  lighting with a paper tint, sensor noise, JPEG compression.
- `augment_scan`: small skew, bleed-through of the page's mirrored back, 1-bit thresholding,
  speckle (salt and pepper dots), as in the 1-bit 300-dpi scans of the real-scans set.
"""

from __future__ import annotations

import cv2
import numpy as np

WHITE = 255


def _pad(image: np.ndarray, rng: np.random.Generator, share: float) -> np.ndarray:
    """White border of up to `share` of the height on each side, so warps do not cut the music."""
    height = image.shape[0]
    top, bottom, left, right = (int(rng.uniform(0.02, share) * height) for _ in range(4))
    return cv2.copyMakeBorder(image, top, bottom, left, right, cv2.BORDER_CONSTANT, value=WHITE)


def perspective(image: np.ndarray, rng: np.random.Generator, strength: float = 0.06) -> np.ndarray:
    """Move each corner by up to `strength` of the image size: a camera not square to the page."""
    h, w = image.shape
    source = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    jitter = rng.uniform(-strength, strength, size=(4, 2)) * np.float32([w, h])
    target = (source + jitter).astype(np.float32)
    matrix = cv2.getPerspectiveTransform(source, target)
    return cv2.warpPerspective(
        image,
        matrix,
        (w, h),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=WHITE,
    )


def curvature(image: np.ndarray, rng: np.random.Generator, strength: float = 0.04) -> np.ndarray:
    """Bend rows along a smooth curve (a page that does not lie flat), up to `strength` x height."""
    h, w = image.shape
    amplitude = rng.uniform(-strength, strength) * h
    phase = rng.uniform(0, np.pi)
    xs = np.arange(w, dtype=np.float32)
    shift = amplitude * np.sin(np.pi * xs / w + phase)
    map_x = np.tile(xs, (h, 1))
    map_y = (np.arange(h, dtype=np.float32)[:, None] + shift[None, :]).astype(np.float32)
    return cv2.remap(
        image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=WHITE
    )


def blur(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Out-of-focus (Gaussian) or hand-shake (short motion line) blur."""
    if rng.random() < 0.6:
        sigma = rng.uniform(0.3, 1.4)
        return cv2.GaussianBlur(image, (0, 0), sigma)
    length = int(rng.integers(3, 7))
    kernel = np.zeros((length, length), np.float32)
    kernel[length // 2, :] = 1.0 / length
    rotation = cv2.getRotationMatrix2D((length / 2 - 0.5, length / 2 - 0.5), rng.uniform(0, 180), 1)
    kernel = cv2.warpAffine(kernel, rotation, (length, length))
    kernel /= max(kernel.sum(), 1e-6)
    return cv2.filter2D(image, -1, kernel, borderType=cv2.BORDER_REPLICATE)


def lighting(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Multiply by a smooth gradient (a lamp to one side) and darken white to a paper tone."""
    h, w = image.shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * xs / w + np.sin(angle) * ys / h).astype(np.float32)
    ramp -= ramp.min()
    ramp /= max(float(ramp.max()), 1e-6)
    darkest = rng.uniform(0.55, 0.9)
    paper = rng.uniform(0.85, 1.0)
    gain = paper * (darkest + (1 - darkest) * ramp)
    return np.clip(image.astype(np.float32) * gain, 0, 255).astype(np.uint8)


def noise(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    sigma = rng.uniform(2, 12)
    noisy = image.astype(np.float32) + rng.normal(0, sigma, size=image.shape).astype(np.float32)
    return np.clip(noisy, 0, 255).astype(np.uint8)


def jpeg(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    quality = int(rng.integers(30, 90))
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok, "OpenCV failed to JPEG-encode a greyscale array"
    return cv2.imdecode(encoded, cv2.IMREAD_GRAYSCALE)


def augment_camera(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """uint8[H, W] clean render -> uint8[H', W'] that looks photographed (H', W' include a margin)."""
    out = _pad(image, rng, share=0.12)
    out = perspective(out, rng)
    out = curvature(out, rng)
    out = blur(out, rng)
    out = lighting(out, rng)
    out = noise(out, rng)
    return jpeg(out, rng)


def skew(image: np.ndarray, rng: np.random.Generator, degrees: float = 1.0) -> np.ndarray:
    h, w = image.shape
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), rng.uniform(-degrees, degrees), 1.0)
    return cv2.warpAffine(
        image,
        matrix,
        (w, h),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=WHITE,
    )


def bleed_through(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Blend in a faint, blurred, mirrored and shifted copy: the back of a thin page."""
    back = cv2.flip(image, 1)
    back = np.roll(back, int(rng.integers(-image.shape[0] // 4, image.shape[0] // 4 + 1)), axis=0)
    back = cv2.GaussianBlur(back, (0, 0), rng.uniform(0.8, 2.0))
    strength = rng.uniform(0.1, 0.35)
    ink = (255 - back.astype(np.float32)) * strength
    return np.clip(image.astype(np.float32) - ink, 0, 255).astype(np.uint8)


def threshold(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """1-bit: black where darker than a light-grey threshold (heavier or lighter strokes)."""
    level = rng.uniform(170, 235)  # thin staff lines render grey (~120-200): keep them
    return np.where(image < level, 0, WHITE).astype(np.uint8)


def speckle(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Flip a small share of pixels to black dots (dust) and white holes (dropouts)."""
    out = image.copy()
    share = rng.uniform(0.0005, 0.004)
    dust = rng.random(image.shape) < share
    holes = rng.random(image.shape) < share / 2
    out[dust] = 0
    out[holes] = WHITE
    return out


def augment_scan(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """uint8[H, W] clean render -> uint8[H', W'] that looks like a 1-bit scan (values 0 and 255)."""
    out = _pad(image, rng, share=0.06)
    out = skew(out, rng)
    if rng.random() < 0.5:
        out = bleed_through(out, rng)
    out = threshold(out, rng)
    return speckle(out, rng)

"""Five-line staff detection on a deskewed ink mask.

1. Line thickness and spacing from vertical run lengths (the most common black run is a staff
   line, the most common white run the space between two lines).
2. A horizontal opening keeps only long horizontal ink (staff lines; not text, slurs, stems,
   noteheads or slanted beams), and its row profile shows the lines as peaks.
3. A five-tooth comb, `min` over the teeth of the profile, scores each row as the top line of a
   staff, for spacings from 0.6x to 1.4x the page's (cue staves are smaller). A lone beam, a
   ledger line or a line of text cannot score, because all five teeth must land on a line.
4. Greedy non-maximum suppression picks staves, best first; each line is then re-centred on its
   own peak.
"""

from __future__ import annotations

import cv2
import numpy as np

from omrgemma.image.layout import Staff

# Staves whose comb score is below this share of the page's best are line fragments, not staves.
_MIN_RELATIVE_SCORE = 0.25
# ... and below this many staff spaces of line length they are too short to read.
_MIN_LENGTH_SPACES = 6.0
# Staves smaller than this share of the page's median spacing are footnotes or ossias.
_MIN_RELATIVE_SPACING = 0.8
# Residual slants (degrees) searched per staff after the page is deskewed.
_SLANTS = (-1.0, -0.6, -0.3, 0.0, 0.3, 0.6, 1.0)
_N_STRIPS = 16
_SLANT_HANDICAP = 0.93


def staff_metrics(ink: np.ndarray, *, n_columns: int = 300) -> tuple[float, float]:
    """uint8[H, W] ink mask -> (line thickness, line-to-line spacing) in pixels, from the
    most common vertical black and white runs over about `n_columns` sampled columns."""
    height, width = ink.shape
    step = max(1, width // n_columns)
    columns = np.zeros((width // step + (width % step > 0), height + 2), np.int8)
    columns[:, 1:-1] = ink[:, ::step].T
    edges = np.diff(columns.ravel())
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)
    black = ends - starts
    same_column = (starts[1:] // (height + 2)) == (ends[:-1] // (height + 2))
    white = (starts[1:] - ends[:-1])[same_column]
    if black.size < 10 or white.size < 10:
        return 1.0, 10.0
    thickness = int(np.argmax(np.bincount(black)))
    space = int(np.argmax(np.bincount(white[white > 1])))  # 1-px gaps are scan noise
    return float(max(thickness, 1)), float(space + max(thickness, 1))


def find_staves(ink: np.ndarray, *, spacing: float, thickness: float) -> list[Staff]:
    """uint8[H, W] deskewed ink mask -> staves, top to bottom (pixel coordinates of `ink`).

    Pages are rarely flat: a staff near the bottom of a scan may still slant by a degree after
    the page is deskewed. Each staff is therefore searched under a few residual slants
    (`_SLANTS`), with row profiles sheared strip by strip as in `deskew`.
    """
    height, width = ink.shape
    run = max(5, round(3 * spacing))
    lines = cv2.morphologyEx(ink, cv2.MORPH_OPEN, np.ones((1, run), np.uint8))
    strip = max(1, width // _N_STRIPS)
    n_strips = width // strip
    strip_profiles = (
        lines[:, : n_strips * strip]
        .reshape(height, n_strips, strip)
        .sum(axis=2, dtype=np.float32)
        .T
    )
    x_strips = (np.arange(n_strips) + 0.5) * strip - width / 2
    # Sum over a few rows so thick or slightly slanted lines peak as high as thin straight ones.
    window = max(1, round(thickness)) + 2
    spacings = np.arange(max(3.0, 0.6 * spacing), 1.4 * spacing + 1e-9, 0.25)

    best_score = np.zeros(height, np.float32)
    best_spacing = np.zeros(height, np.float32)
    best_slant = np.zeros(height, np.int32)
    slopes = [float(np.tan(np.radians(degrees))) for degrees in _SLANTS]
    profiles = []
    for slant, slope in enumerate(slopes):
        profile = _sheared_profile(strip_profiles, x_strips, slope)
        smooth = np.convolve(profile, np.ones(window, np.float32), mode="same") / window
        profiles.append(smooth)
        for candidate in spacings:
            offsets = np.round(np.arange(5) * candidate).astype(int)
            span = offsets[-1]
            if span >= height:
                continue
            score = np.stack([smooth[o : height - span + o] for o in offsets]).min(axis=0)
            if slope != 0.0:
                # A slant must beat level lines clearly: wavy lines make neighbours tie.
                score *= _SLANT_HANDICAP
            better = score > best_score[: height - span]
            best_score[: height - span][better] = score[better]
            best_spacing[: height - span][better] = candidate
            best_slant[: height - span][better] = slant

    floor = max(
        _MIN_RELATIVE_SCORE * float(best_score.max(initial=0)), _MIN_LENGTH_SPACES * spacing
    )
    taken = np.zeros(height, bool)
    staves = []
    for top in np.argsort(-best_score, kind="stable"):
        if best_score[top] < floor:
            break
        step = float(best_spacing[top])
        low, high = int(top - 0.6 * step), int(top + 4.6 * step) + 1
        if taken[max(low, 0) : high].any():
            continue
        taken[max(low, 0) : high] = True
        slant = int(best_slant[top])
        staves.append(_measure_staff(lines, profiles[slant], top, step, slopes[slant]))
    if staves:
        # Footnote examples and ossias are engraved smaller; they are not part of the text.
        main = float(np.median([staff.spacing for staff in staves]))
        staves = [staff for staff in staves if staff.spacing >= _MIN_RELATIVE_SPACING * main]
    return sorted(staves, key=lambda staff: staff.top)


def _sheared_profile(strip_profiles: np.ndarray, x: np.ndarray, slope: float) -> np.ndarray:
    """Row profile of lines y = y0 + slope * (x - W/2): strip s shifted by slope * x[s] rows."""
    height = strip_profiles.shape[1]
    total = np.zeros(height, np.float32)
    for profile, shift in zip(strip_profiles, np.round(slope * x).astype(int), strict=True):
        if shift >= 0:
            total[: height - shift] += profile[shift:]
        else:
            total[-shift:] += profile[: height + shift]
    return total


def _measure_staff(
    lines: np.ndarray, smooth: np.ndarray, top: int, step: float, slope: float
) -> Staff:
    """Re-centre each of the five lines on its own peak; measure thickness and extent."""
    height, width = lines.shape
    ys, thicknesses = [], []
    for k in range(5):
        guess = top + k * step
        low = max(0, int(guess - step / 3))
        high = min(height, int(guess + step / 3) + 2)
        segment = smooth[low:high]
        peak = float(segment.max())
        rows = np.flatnonzero(segment >= 0.5 * peak)
        weights = segment[rows]
        ys.append(low + float(np.dot(rows, weights) / weights.sum()) if peak > 0 else guess)
        thicknesses.append(len(rows))
    # A column belongs to the staff when at least three of its five lines pass through it.
    reach = max(1, round(step / 6))
    columns = np.arange(width)
    drift = slope * (columns - width / 2)
    counts = np.zeros(width, np.int32)
    for y in ys:
        present = np.zeros(width, bool)
        for offset in range(-reach, reach + 1):
            rows = np.clip(np.round(y + drift).astype(int) + offset, 0, height - 1)
            present |= lines[rows, columns] > 0
        counts += present
    columns = np.flatnonzero(counts >= 3)
    x0, x1 = (float(columns[0]), float(columns[-1] + 1)) if columns.size else (0.0, 0.0)
    # The smoothing window widens every peak by about two rows.
    thickness = max(1.0, float(np.median(thicknesses)) - 2)
    return Staff(
        top=ys[0],
        bottom=ys[-1],
        line_ys=tuple(ys),
        spacing=(ys[-1] - ys[0]) / 4,
        thickness=thickness,
        x0=x0,
        x1=x1,
        slope=slope,
    )

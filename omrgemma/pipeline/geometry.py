"""Where a system's staff lines and upright strokes really run, column by column.

    lines = track_staff(ink, staff)      # float[5, W]: y of each staff line at every column
    lean = stroke_lean(ink, staves)      # float[W]: dx/dy of upright strokes at every column

`Staff` holds one straight line per staff (`line_ys` at the middle column and one `slope`). A
photographed page breaks that twice: perspective spreads a staff's lines at one end and narrows
them at the other, and a page that does not lie flat bends them; and perspective leans the
strokes that were upright (barlines, stems), more the further they are from the middle. The
barline counter (`omrgemma.pipeline.barlines`) samples a stroke between a staff's top and bottom
line, so it needs both where the lines are and how the strokes lean.

- `track_staff` fits the five lines to the ink in windows of `_WINDOW` staff spacings: each
  window moves the staff up or down and stretches it about its middle line, and keeps the fit
  that puts the most ink on the five rows. Windows without a clear fit (no lines there) are left
  out. A parabola through the windows' shifts (a bent page) and a line through their stretches
  (perspective), refitted without the windows far off it, give the lines at every column.
- `stroke_lean` shears each staff by each lean in `LEANS` and keeps, per window, the lean whose
  column profile is sharpest (the sum of squared column sums, the projection-profile skew
  criterion, taken staff by staff so that strokes of different staves do not line up by
  chance). A line through the windows' leans (Theil-Sen: the median of pairwise slopes) gives
  the lean at every column. A fit that never leans more than `UPRIGHT` is taken as upright: on
  300-dpi scans of printed pages it only measures noise.
"""

from __future__ import annotations

import numpy as np

from omrgemma.image.layout import Staff

LEANS = np.round(np.arange(-0.25, 0.2501, 0.025), 3)  # dx/dy of the strokes tried
UPRIGHT = 0.05  # a fitted lean that stays below this everywhere is taken as 0
_WINDOW = 4.0  # staff spacings: the width of the windows the staff lines are fitted in
_SHIFT = 0.75  # staff spacings: how far a window's lines may move from the straight staff
_STRETCH = (0.85, 1.15)  # how much a window's staff may be taller or shorter than the straight one
_LINE_INK = 0.5  # share of a window's columns the five lines must ink on average to fit it
_OUTLIER = 0.25  # staff spacings: a window this far off the fitted curve is left out
_LEAN_WINDOW = 8.0  # staff spacings: the windows the lean is measured in
_SHARP = 1.05  # a window's best lean must beat the leans 3 steps either side by this factor


def straight_lines(staff: Staff, width: int) -> np.ndarray:
    """float[5, W]: the staff's lines as `Staff` describes them (straight, one slope)."""
    drift = staff.slope * (np.arange(width) - width / 2)
    return np.asarray(staff.line_ys, np.float64)[:, None] + drift[None, :]


def track_staff(ink: np.ndarray, staff: Staff) -> np.ndarray:
    """float[5, W]: the y of each of the staff's lines at every column of the uint8[H, W] ink
    mask (1 = ink), following perspective and bending (module docstring)."""
    height, width = ink.shape
    straight = straight_lines(staff, width)
    spacing = staff.spacing
    step = max(2, int(round(_WINDOW * spacing / 2)))
    offsets = np.asarray(staff.line_ys, np.float64) - staff.line_ys[2]  # about the middle line
    shifts = np.arange(-_SHIFT * spacing, _SHIFT * spacing + 0.5, 1.0)
    stretches = np.arange(_STRETCH[0], _STRETCH[1] + 1e-9, 0.05)
    # candidate rows [stretch, shift, line] relative to the straight middle line
    relative = shifts[None, :, None] + stretches[:, None, None] * offsets[None, None, :]
    # only the rows the candidates can reach
    reach = _SHIFT * spacing + (_STRETCH[1] - 1) * np.abs(offsets).max() + 2
    low = max(0, int(straight.min() - reach))
    high = min(height, int(straight.max() + reach) + 2)
    band = ink[low:high].astype(np.float32)
    # a line is 1-3 rows thick: count ink on the row and the rows either side
    thick = band + np.roll(band, 1, axis=0) + np.roll(band, -1, axis=0)
    summed = np.zeros((thick.shape[0], width + 1), np.float32)
    np.cumsum(thick, axis=1, out=summed[:, 1:])  # window profiles from column sums
    centres, fits = [], []
    for start in range(0, max(1, width - step), step):
        stop = min(width, start + 2 * step)
        middle = (start + stop) / 2
        centre_y = float(np.interp(middle, np.arange(width), straight[2])) - low
        profile = (summed[:, stop] - summed[:, start]) / (stop - start)
        rows = np.clip(np.round(centre_y + relative).astype(int), 0, thick.shape[0] - 1)
        score = np.minimum(profile[rows], 1.0).sum(axis=-1)  # [stretch, shift]
        best = np.unravel_index(int(score.argmax()), score.shape)
        centres.append(middle)
        if score[best] >= _LINE_INK * len(offsets):
            fits.append((shifts[best[1]], stretches[best[0]]))
        else:
            fits.append((np.nan, np.nan))
    fitted = np.asarray(fits, np.float64).reshape(-1, 2)
    known = ~np.isnan(fitted[:, 0])
    if known.sum() < 3:
        return straight
    centres = np.asarray(centres)[known]
    columns = np.arange(width)
    shift = _robust_poly(centres, fitted[known, 0], 2, _OUTLIER * spacing)(columns)
    stretch = _robust_poly(centres, fitted[known, 1], 1, _OUTLIER * 0.2)(columns)
    return straight[2][None, :] + shift[None, :] + stretch[None, :] * offsets[:, None]


def _robust_poly(x: np.ndarray, y: np.ndarray, degree: int, outlier: float) -> np.poly1d:
    """A least-squares polynomial through (x, y), refitted without the points further than
    `outlier` from it (a window fitted to the wrong line, a beam taken for a line)."""
    degree = min(degree, x.size - 1)
    keep = np.ones(x.size, bool)
    for _ in range(3):
        fit = np.poly1d(np.polyfit(x[keep], y[keep], degree))
        close = np.abs(y - fit(x)) <= outlier
        if close.sum() <= degree or (close == keep).all():
            break
        keep = close
    return fit


def shear(ink: np.ndarray, lean: float, pivot: float) -> np.ndarray:
    """The ink with strokes of `lean` (dx/dy) made upright, rows moved about row `pivot`:
    out[y, x] = ink[y, x + lean * (y - pivot)]."""
    import cv2

    if lean == 0:
        return ink
    matrix = np.float32([[1, lean, -lean * pivot], [0, 1, 0]])
    height, width = ink.shape
    return cv2.warpAffine(
        ink, matrix, (width, height), flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP
    )


def stroke_lean(shears: list[np.ndarray], lines: list[np.ndarray], spacing: float) -> np.ndarray:
    """int[W]: for every column, the index into `LEANS` of its upright strokes' lean.

    shears: the system's ink sheared by each of `LEANS` (`shear`); lines: each staff's
    float[5, W] (`track_staff`), whose rows between top and bottom line are measured."""
    width = shears[0].shape[1]
    upright = int(np.abs(LEANS).argmin())
    profiles = []
    for staff_lines in lines:
        top = max(0, int(staff_lines[0].min()))
        bottom = int(staff_lines[-1].max()) + 1
        profiles.append(np.stack([s[top:bottom].sum(axis=0).astype(np.float64) for s in shears]))
    step = max(1, int(_LEAN_WINDOW * spacing / 2))
    xs, leans = [], []
    for start in range(0, width - step, step):
        score = sum((p[:, start : start + 2 * step] ** 2).sum(axis=1) for p in profiles)
        best = int(score.argmax())
        if best < 3 or best > len(LEANS) - 4 or score[best] <= 0:
            continue  # at the end of the range: strokes sliding into the window, not a lean
        if score[best] < _SHARP * (score[best - 3] + score[best + 3]) / 2:
            continue
        xs.append(start + step)
        leans.append(LEANS[best])
    if len(xs) < 3:
        return np.full(width, upright)
    x, lean = np.asarray(xs, np.float64), np.asarray(leans)
    i, j = np.triu_indices(len(x), 1)
    slope = float(np.median((lean[j] - lean[i]) / (x[j] - x[i])))
    intercept = float(np.median(lean - slope * x))
    fit = intercept + slope * np.arange(width)
    if np.abs(fit).max() < UPRIGHT:
        return np.full(width, upright)
    return np.abs(fit[:, None] - LEANS[None, :]).argmin(axis=1)


__all__ = ["LEANS", "UPRIGHT", "shear", "straight_lines", "stroke_lean", "track_staff"]

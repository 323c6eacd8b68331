"""What page analysis finds: staves, systems and the page transform, in deskewed page pixels.

Coordinates are floats in the *deskewed page* frame: the input page rotated by `PageLayout.transform`
(same size and scale as the input). `crops.cut_systems` applies that transform itself, so callers
never rotate whole pages. Boxes are (x0, y0, x1, y1), x1/y1 exclusive.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

Box = tuple[float, float, float, float]


@dataclass(frozen=True, kw_only=True)
class Staff:
    """One five-line staff.

    line_ys: the five line centres, top to bottom, where they cross the page's middle column
    (x = W / 2). spacing: mean distance between adjacent lines. thickness: staff-line thickness.
    x0, x1: horizontal extent of the lines. slope: dy/dx of the lines left after deskewing (a
    page that is not flat), so line k runs along y = line_ys[k] + slope * (x - W / 2).
    """

    top: float
    bottom: float
    line_ys: tuple[float, ...]
    spacing: float
    thickness: float
    x0: float
    x1: float
    slope: float = 0.0


@dataclass(frozen=True, kw_only=True)
class System:
    """Staves read together (joined by barlines or a brace), top to bottom, and the crop box.

    box: the region to crop for the model, with room for ledger lines and dynamics; boxes of
    neighbouring systems meet at the emptiest row between them and never overlap.
    """

    staves: tuple[Staff, ...]
    box: Box


@dataclass(frozen=True, kw_only=True)
class PageLayout:
    """The result of `analyze_page`.

    shape: (H, W) of the input page. angle: skew of the input in degrees, counter-clockwise
    positive; the deskewed frame is the input rotated by -angle about its centre.
    transform: float64[2, 3] affine map from input pixels to deskewed pixels (cv2.warpAffine form).
    staves: every staff of `systems`, top to bottom. Music examples in footnotes and ossias
    (staves engraved smaller, or lone short staves on a page of multi-staff systems) are left
    out of both, as they are not part of the piece's text.
    spacing, thickness: the page's dominant staff spacing and line thickness, input pixels.
    timings: seconds per stage, for benchmarks.
    """

    shape: tuple[int, int]
    angle: float
    transform: np.ndarray
    staves: tuple[Staff, ...]
    systems: tuple[System, ...]
    spacing: float
    thickness: float
    timings: dict[str, float] = field(default_factory=dict)

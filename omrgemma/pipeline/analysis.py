"""Input file -> pages -> systems -> model crops: the CPU half of transcription.

Runs without the model and without JAX, so a batch runs it in worker processes while the main
process decodes. Everything it returns is plain numpy and dataclasses (cheap to send between
processes).

    analysis = analyze_input(Path("score.pdf"), pages="1-2", target=448)
    analysis.pages[0].systems[0].image      # uint8[448, 448] crop for the model
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from omrgemma.errors import ImageError, NoStavesError, OmrError
from omrgemma.image.crops import Target


@dataclass(frozen=True, kw_only=True)
class SystemCrop:
    """One system: `number` 1-based within the score; `box` (x0, y0, x1, y1) in the page's
    deskewed frame; `staves` how many staves it has; `image` uint8[S, S] for the model."""

    number: int
    page: int
    box: tuple[float, float, float, float]
    staves: int
    image: np.ndarray


@dataclass(frozen=True, kw_only=True)
class PageAnalysis:
    """One page: `index` 0-based in the file; `transform` float64[2, 3] input -> deskewed
    pixels; `note` says why a page gave no systems (e.g. no staves found)."""

    index: int
    shape: tuple[int, int]
    angle: float
    transform: np.ndarray
    systems: list[SystemCrop]
    note: str | None = None


@dataclass(kw_only=True)
class InputAnalysis:
    """All pages of one input, or the error that stopped reading it."""

    path: Path
    pages: list[PageAnalysis] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=lambda: {"read": 0.0, "analyze": 0.0})
    error: str | None = None
    error_kind: str | None = None

    @property
    def systems(self) -> list[SystemCrop]:
        return [s for page in self.pages for s in page.systems]


def analyze_input(
    path: str | Path, *, target: Target, pages: str | None = None, dpi: float = 300
) -> InputAnalysis:
    """Read every selected page of `path`, find its systems and cut them at `target` pixels.

    Never raises an `OmrError`: a file that cannot be read comes back with `error` set; a page
    without staves comes back with no systems and a `note`, so one blank page does not lose
    the score.
    """
    from omrgemma.image import analyze_page, read_pages
    from omrgemma.image.crops import cut_systems

    analysis = InputAnalysis(path=Path(path))
    number = 0
    try:
        clock = time.perf_counter()
        for page in read_pages(path, pages=pages, dpi=dpi):
            began = time.perf_counter()
            analysis.seconds["read"] += began - clock
            try:
                layout = analyze_page(page.image, source=f"{path} page {page.index + 1}")
            except NoStavesError:
                analysis.pages.append(_empty_page(page, "no staves found on this page"))
            else:
                systems = []
                for crop in cut_systems(page.image, layout, target=target, page_index=page.index):
                    number += 1
                    system = layout.systems[crop.system_index]
                    systems.append(
                        SystemCrop(
                            number=number,
                            page=page.index,
                            box=tuple(float(v) for v in crop.box),
                            staves=len(system.staves),
                            image=to_gray(crop.image),
                        )
                    )
                analysis.pages.append(
                    PageAnalysis(
                        index=page.index,
                        shape=tuple(page.image.shape[:2]),
                        angle=float(layout.angle),
                        transform=np.asarray(layout.transform, np.float64),
                        systems=systems,
                    )
                )
            clock = time.perf_counter()
            analysis.seconds["analyze"] += clock - began
    except OmrError as exc:
        analysis.error = exc.format()
        analysis.error_kind = type(exc).__name__
    if analysis.error is None and not analysis.pages:
        analysis.error, analysis.error_kind = f"{path}: no pages", ImageError.__name__
    return analysis


def _empty_page(page, note: str) -> PageAnalysis:
    return PageAnalysis(
        index=page.index,
        shape=tuple(page.image.shape[:2]),
        angle=0.0,
        transform=np.array([[1.0, 0, 0], [0, 1.0, 0]]),
        systems=[],
        note=note,
    )


def to_gray(image: np.ndarray) -> np.ndarray:
    """A model input f32[S, S, 3] in [-1, 1] back to uint8[S, S] (exact: x = v / 127.5 - 1).

    Crops travel between processes as uint8, a twelfth of the float size.
    """
    if image.dtype == np.uint8:
        return np.ascontiguousarray(image if image.ndim == 2 else image[..., 0])
    values = np.rint((np.asarray(image)[..., 0] + 1.0) * 127.5)
    return np.clip(values, 0, 255).astype(np.uint8)

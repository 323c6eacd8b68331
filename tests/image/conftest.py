"""Synthetic score pages rendered by verovio + resvg, with their true system and staff counts."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass

import numpy as np
import pytest
from PIL import Image

# A short two-staff piece that loads in well under a second; its first page has several systems.
SYNTHETIC_KERN = "kern/piano/scarlatti-keyboard-sonatas/L001K514.krn"


@dataclass(frozen=True)
class RenderedPage:
    """image: uint8[H, W] page. systems, staves_per_system: the truth, read from the SVG."""

    image: np.ndarray
    systems: int
    staves_per_system: int


def count_systems_and_staves(svg: str) -> tuple[int, int]:
    """(systems, staves in the first system) of a verovio SVG page: staves live in measures."""
    root = ElementTree.fromstring(svg)
    systems = [g for g in root.iter("{http://www.w3.org/2000/svg}g") if g.get("class") == "system"]
    first_measure = next(
        g for g in systems[0].iter("{http://www.w3.org/2000/svg}g") if g.get("class") == "measure"
    )
    staves = [g for g in first_measure if g.get("class") == "staff"]
    return len(systems), len(staves)


def render_page(kern: str, *, zoom: float = 2.0) -> RenderedPage:
    import resvg_py
    import verovio

    toolkit = verovio.toolkit()
    toolkit.setOptions(
        {"pageWidth": 2100, "pageHeight": 2970, "scale": 40, "breaks": "auto", "footer": "none"}
    )
    toolkit.loadData(kern)
    svg = toolkit.renderToSVG(1)
    png = resvg_py.svg_to_bytes(
        svg_string=svg, background="#ffffff", font_family="DejaVu Serif", zoom=zoom
    )
    image = np.array(Image.open(io.BytesIO(bytes(png))).convert("L"))
    systems, staves = count_systems_and_staves(svg)
    return RenderedPage(image=image, systems=systems, staves_per_system=staves)


@pytest.fixture(scope="session")
def rendered_page(shared_data) -> RenderedPage:
    """Page 1 of a Scarlatti sonata at about 200 dpi (staff space about 14 px)."""
    return render_page((shared_data / SYNTHETIC_KERN).read_text(encoding="utf-8"))

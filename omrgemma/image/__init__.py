"""Score images in: read any scan or PDF, find staves and systems, cut the model's crops.

    from omrgemma.image import analyze_page, cut_systems, read_pages

    for page in read_pages("score.pdf", pages="1-2", dpi=300):   # uint8[H, W] pages, lazily
        layout = analyze_page(page.image, source=str(page.source))  # NoStavesError if none
        crops = cut_systems(page.image, layout, target=448, page_index=page.index)
        batch = stack(crops)                                         # float32[B, 448, 448, 3]

Photos: `rectify_page(gray)` first (page quadrilateral -> flat page), then
`analyze_page(..., binarize="sauvola")`. Previews: `draw_overlay(page.image, layout)`.
"""

from omrgemma.image.analyze import analyze_page
from omrgemma.image.crops import (
    Crop,
    cut_region,
    cut_systems,
    fit_to,
    stack,
    system_slope,
    tile_system,
)
from omrgemma.image.layout import PageLayout, Staff, System
from omrgemma.image.overlay import draw_overlay
from omrgemma.image.perspective import rectify_page
from omrgemma.image.read import MAX_PIXELS, Page, count_pages, parse_page_range, read_pages

__all__ = [
    "MAX_PIXELS",
    "Crop",
    "Page",
    "PageLayout",
    "Staff",
    "System",
    "analyze_page",
    "count_pages",
    "cut_region",
    "cut_systems",
    "draw_overlay",
    "fit_to",
    "parse_page_range",
    "read_pages",
    "rectify_page",
    "stack",
    "system_slope",
    "tile_system",
]

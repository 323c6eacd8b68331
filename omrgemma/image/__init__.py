"""Score images in: read any scan or PDF, find staves and systems, cut the model's crops.

for page in read_pages("score.pdf", pages="1-2"):
    layout = analyze_page(page.image)
    crops = cut_systems(page.image, layout, target=448, page_index=page.index)
"""

from omrgemma.image.analyze import analyze_page
from omrgemma.image.layout import PageLayout, Staff, System
from omrgemma.image.overlay import draw_overlay
from omrgemma.image.read import MAX_PIXELS, Page, count_pages, parse_page_range, read_pages

__all__ = [
    "MAX_PIXELS",
    "Page",
    "PageLayout",
    "Staff",
    "System",
    "analyze_page",
    "count_pages",
    "draw_overlay",
    "parse_page_range",
    "read_pages",
]

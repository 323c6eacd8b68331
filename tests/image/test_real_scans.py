"""End to end on real 1-bit scans: the systems found equal the edition's, as marked in the kern."""

from __future__ import annotations

import pytest

from omrgemma.image import analyze_page, read_pages
from omrgemma.image.crops import cut_systems
from omrgemma.image.scans import count_marked_systems, marks_cover_whole, scan_movements

# Short movements from each collection (2-3 pages each), chosen before tuning on the full set.
MOVEMENTS = [
    ("beethoven-piano-sonatas", "sonata01-3"),
    ("joplin", "antoinette"),
    ("scarlatti-keyboard-sonatas", "L001K514"),
]


def test_count_marked_systems():
    text = "**kern\n*clefG2\n4c\n!!LO:LB:g=original\n4d\n!!LO:PB:g=z\n4e\n!!LO:TX:a:t=x\n*-\n"
    assert count_marked_systems(text) == 3
    assert count_marked_systems("**kern\n4c\n*-\n") is None


def test_marks_must_run_to_the_end():
    """Some encodings mark the breaks of the first pages only (sonata29-4 stops halfway)."""
    bar = "=\n4c\n4d\n"
    whole = "**kern\n" + ("!!LO:LB:g=original\n" + bar * 4) * 5 + "*-\n"
    assert marks_cover_whole(whole)
    half = "**kern\n" + ("!!LO:LB:g=original\n" + bar * 4) * 5 + bar * 60 + "*-\n"
    assert not marks_cover_whole(half)
    assert not marks_cover_whole("**kern\n4c\n*-\n")


@pytest.mark.parametrize("collection, name", MOVEMENTS)
def test_system_count_matches_the_kern(shared_data, collection, name):
    movement = next(m for m in scan_movements(shared_data, collection) if m.name == name)
    assert movement.systems is not None and movement.fully_marked
    found = 0
    for page in read_pages(movement.pdf):
        layout = analyze_page(page.image, source=str(movement.pdf))
        crops = cut_systems(page.image, layout, target=224, page_index=page.index)
        assert len(crops) == len(layout.systems)
        assert all(len(system.staves) == 2 for system in layout.systems)  # piano: grand staves
        found += len(layout.systems)
    assert found == movement.systems

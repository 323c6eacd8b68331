"""The real-scan corpus: each `scans/COLLECTION/NAME.pdf` is the printed edition that
`kern/piano/COLLECTION/NAME.krn` was encoded from, and the kern marks the edition's system
breaks (`!!LO:LB`) and page breaks (`!!LO:PB`), so it tells how many systems the scan holds."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SCAN_COLLECTIONS = ("beethoven-piano-sonatas", "joplin", "scarlatti-keyboard-sonatas")


@dataclass(frozen=True, kw_only=True)
class ScanMovement:
    """A scanned movement and its kern.

    systems: the edition's system count, None if unmarked. fully_marked: the marks run to the
    end of the kern (see `marks_cover_whole`). pdf_digest: SHA-256 of the PDF; a few PDFs hold
    two movements and are byte-identical copies under both names.
    """

    name: str
    collection: str
    pdf: Path
    kern: Path
    systems: int | None
    fully_marked: bool
    pdf_digest: str


def count_marked_systems(kern_text: str) -> int | None:
    """1 + the number of system and page breaks marked in a kern file; None if it marks none.

    >>> count_marked_systems("**kern\\n4c\\n!!LO:LB:g=original\\n4d\\n*-\\n")
    2
    """
    breaks = sum(1 for line in kern_text.splitlines() if line.startswith(("!!LO:LB", "!!LO:PB")))
    return breaks + 1 if breaks else None


def marks_cover_whole(kern_text: str) -> bool:
    """Whether the break marks run to the end of the piece, not just part of it.

    Some encodings mark the edition's breaks for the first pages only; their count then says
    nothing about the scan. A marked file's last system is no longer than a few of its others,
    so the lines after the last mark must not exceed three times the longest stretch between
    marks.
    """
    lines = kern_text.splitlines()
    marks = [i for i, line in enumerate(lines) if line.startswith(("!!LO:LB", "!!LO:PB"))]
    if not marks:
        return False
    stretches = np.diff([0, *marks])
    return len(lines) - marks[-1] <= 3 * int(stretches.max())


def scan_movements(data_dir: Path, collection: str) -> list[ScanMovement]:
    """Every scanned movement of a collection that has a kern file, sorted by name."""
    movements = []
    for pdf in sorted((data_dir / "scans" / collection).glob("*.pdf")):
        kern = data_dir / "kern" / "piano" / collection / f"{pdf.stem}.krn"
        if not kern.is_file():
            continue
        text = kern.read_text(encoding="utf-8", errors="replace")
        movements.append(
            ScanMovement(
                name=pdf.stem,
                collection=collection,
                pdf=pdf,
                kern=kern,
                systems=count_marked_systems(text),
                fully_marked=marks_cover_whole(text),
                pdf_digest=hashlib.sha256(pdf.read_bytes()).hexdigest(),
            )
        )
    return movements

"""The real-scan corpus: each `scans/COLLECTION/NAME.pdf` is the printed edition that
`kern/piano/COLLECTION/NAME.krn` was encoded from, and the kern marks the edition's system
breaks (`!!LO:LB`) and page breaks (`!!LO:PB`), so it tells how many systems the scan holds."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SCAN_COLLECTIONS = ("beethoven-piano-sonatas", "joplin", "scarlatti-keyboard-sonatas")


@dataclass(frozen=True, kw_only=True)
class ScanMovement:
    """A scanned movement and its kern. systems: the edition's system count, None if unmarked."""

    name: str
    collection: str
    pdf: Path
    kern: Path
    systems: int | None


def count_marked_systems(kern_text: str) -> int | None:
    """1 + the number of system and page breaks marked in a kern file; None if it marks none.

    >>> count_marked_systems("**kern\\n4c\\n!!LO:LB:g=original\\n4d\\n*-\\n")
    2
    """
    breaks = sum(1 for line in kern_text.splitlines() if line.startswith(("!!LO:LB", "!!LO:PB")))
    return breaks + 1 if breaks else None


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
            )
        )
    return movements

"""Layout benchmark on real scans: does page analysis find every system of each movement?

For each scanned movement whose kern marks its system breaks, the systems detected over all its
pages must equal 1 + the number of marks. Reports the share of movements right per collection
(movements without marks are skipped and counted) and the median analysis time of a 300-dpi and a
600-dpi page on one core.

    .venv/bin/python benchmarks/layout.py                      # all, writes results/layout.md
    .venv/bin/python benchmarks/layout.py --limit 5 --overlays /tmp/layout-fail --no-write
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import cv2
from PIL import Image

from omrgemma.errors import NoStavesError
from omrgemma.image import analyze_page, draw_overlay, read_pages
from omrgemma.image.scans import SCAN_COLLECTIONS, scan_movements
from omrgemma.settings import data_dir

RESULTS = Path(__file__).parent / "results" / "layout.md"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--collections", nargs="*", default=list(SCAN_COLLECTIONS))
    parser.add_argument("--limit", type=int, default=0, help="movements per collection (0: all)")
    parser.add_argument("--only", nargs="*", default=[], help="movement names to run")
    parser.add_argument("--overlays", type=Path, help="write overlay PNGs of failures here")
    parser.add_argument("--no-write", action="store_true", help="do not write results/layout.md")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    root = data_dir()

    rows, failures, partial, times_300 = [], [], [], []
    for collection in args.collections:
        movements = scan_movements(root, collection)
        if args.only:
            movements = [m for m in movements if m.name in args.only]
        if args.limit:
            movements = movements[: args.limit]
        # A PDF holding two movements is stored under both names: expect their sum, run it once.
        expected_by_pdf: dict[str, int] = {}
        for movement in movements:
            if movement.systems is not None and movement.fully_marked:
                expected_by_pdf[movement.pdf_digest] = (
                    expected_by_pdf.get(movement.pdf_digest, 0) + movement.systems
                )
        found_by_pdf: dict[str, int] = {}
        right = skipped = 0
        for movement in movements:
            if movement.systems is None or not movement.fully_marked:
                skipped += 1
                if movement.systems is not None:
                    partial.append(f"{collection}/{movement.name}")
                continue
            expected = expected_by_pdf[movement.pdf_digest]
            if movement.pdf_digest in found_by_pdf:
                right += found_by_pdf[movement.pdf_digest] == expected
                continue
            per_page, layouts = [], []
            for page in read_pages(movement.pdf):
                start = time.perf_counter()
                try:
                    layout = analyze_page(page.image)
                except NoStavesError:
                    layout = None
                times_300.append(time.perf_counter() - start)
                per_page.append(0 if layout is None else len(layout.systems))
                layouts.append((page, layout))
            found = found_by_pdf[movement.pdf_digest] = sum(per_page)
            if found == expected:
                right += 1
            else:
                failures.append(
                    f"{collection}/{movement.name}: kern {expected}, found {found} {per_page}"
                )
                print(failures[-1], file=sys.stderr)
                if args.overlays:
                    _write_overlays(args.overlays, collection, movement.name, layouts)
        checked = len(movements) - skipped
        rows.append((collection, checked, right, skipped))
        print(f"{collection}: {right}/{checked} right, {skipped} skipped", file=sys.stderr)

    times_600 = _time_600(root)
    report = _report(rows, failures, partial, times_300, times_600)
    print(report)
    if not args.no_write:
        RESULTS.write_text(report, encoding="utf-8")
    return 0


def _time_600(root: Path, n_pages: int = 5) -> list[float]:
    """Analysis time of scans rasterised at 600 dpi (the 1-bit scan upsampled by pdfium)."""
    movements = scan_movements(root, SCAN_COLLECTIONS[0])[:n_pages]
    times = []
    for movement in movements:
        page = next(iter(read_pages(movement.pdf, pages="1", dpi=600)))
        start = time.perf_counter()
        analyze_page(page.image)
        times.append(time.perf_counter() - start)
    return times


def _write_overlays(folder: Path, collection: str, name: str, layouts) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for page, layout in layouts:
        if layout is None:
            continue
        picture = Image.fromarray(draw_overlay(page.image, layout))
        picture = picture.resize((picture.width // 3, picture.height // 3))
        picture.save(folder / f"{collection}-{name}-p{page.index + 1}.png")


def _report(rows, failures, partial, times_300, times_600) -> str:
    lines = [
        "# Layout benchmark: system counts on real scans",
        "",
        "`.venv/bin/python benchmarks/layout.py` (one core: `cv2.setNumThreads(1)`). A movement is",
        "right when the systems found over all its pages equal 1 + its kern's `!!LO:LB`/`!!LO:PB`",
        "marks.",
        "",
        "Skipped (and counted): kern files without marks, and files whose marks stop well before",
        "the end (`omrgemma.image.scans.marks_cover_whole`). A PDF stored byte-identical under two",
        "movement names (the scan holds both) is compared with the sum of the two kerns.",
        "",
        "| collection | movements checked | right | share | skipped: unmarked or partly marked |",
        "|---|---:|---:|---:|---:|",
    ]
    total_checked = total_right = 0
    for collection, checked, right, unmarked in rows:
        share = right / checked if checked else 0.0
        lines.append(f"| {collection} | {checked} | {right} | {share:.1%} | {unmarked} |")
        total_checked += checked
        total_right += right
    share = total_right / total_checked if total_checked else 0.0
    lines.append(f"| **all** | {total_checked} | {total_right} | **{share:.1%}** | |")
    lines += [
        "",
        "| page | pages timed | median analysis time |",
        "|---|---:|---:|",
        f"| 300 dpi (the scans, about 2400 x 3200) | {len(times_300)} | "
        f"{statistics.median(times_300) * 1000:.0f} ms |"
        if times_300
        else "| 300 dpi | 0 | - |",
        f"| 600 dpi (scans rasterised at 600 dpi) | {len(times_600)} | "
        f"{statistics.median(times_600) * 1000:.0f} ms |"
        if times_600
        else "| 600 dpi | 0 | - |",
        "",
        "Failures (kern systems, found, per page):",
        "",
    ]
    lines += [f"- {failure}" for failure in failures] or ["- none"]
    lines += ["", "Partly marked kern files (skipped):", ""]
    lines += [f"- {name}" for name in partial] or ["- none"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())

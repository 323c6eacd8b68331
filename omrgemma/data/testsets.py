"""The evaluation sets, built on the fly from the corpora (nothing is copied into the repo).

    for example in grandstaff_like(data_dir(), seed=0):   # Example(id, collection, image, kern)
        ...

- grandstaff-like: every held-out piano movement (`kern/piano/COLLECTION/*.krn`; every movement
  of a collection the committed split does not name) cut into chunks of 1-8 measures (seeded per
  movement) and engraved one system per image by verovio, as GrandStaff was made.
- camera-like: the same systems through `augment_camera`, seeded per example id.
- real-scans: system crops from `scans/COLLECTION/NAME.pdf` found by the page analysis in
  `omrgemma.image`, paired in order with the kern cut at the edition's own system breaks. A
  movement is used only when it has break marks and the detected system count over all its pages
  equals the kern's; the others are reported in `RealScanReport.skipped` and left out, never
  guessed.
- real-scans-dev, grandstaff-like-dev, camera-like-dev, single-staff-dev: the same from *training*
  movements
  (their scans; their kern cut and rendered). Not test sets: they are where models, stages and
  settings may be compared and chosen, so that the held-out sets stay for measuring only. A
  model has trained on renders of these movements' kern (never on the scans), so their
  figures flatter it; comparisons between settings of one model are what they are for.
- single-staff: held-out movements of the single-staff collections a staff model trains on
  (`SINGLE_STAFF_COLLECTIONS`, the same as `omrgemma.train_run.DATASETS["single"]`), cut into
  chunks of 1-4 measures (seeded per movement), at most `SINGLE_STAFF_PER_MOVEMENT` chunks of
  each movement (a seeded choice, so long parts do not crowd out short songs), engraved one
  staff per image like grandstaff-like.

Examples come sorted by movement, then by system. Ids are `COLLECTION/NAME.krn#INDEX` (INDEX
0-based), stable for a given seed and data folder.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from omrgemma.data.augment import augment_camera
from omrgemma.data.render import DEFAULT, RenderOptions, SafeRenderer
from omrgemma.data.snippets import CutError, count_break_marks, cut_at_breaks, cut_by_measures
from omrgemma.data.split import kern_relpath, test_files, train_files

SetName = Literal[
    "grandstaff-like", "camera-like", "real-scans", "single-staff", "real-scans-dev",
    "grandstaff-like-dev", "camera-like-dev", "single-staff-dev",
]  # fmt: skip
SET_NAMES: tuple[SetName, ...] = (
    "grandstaff-like", "camera-like", "real-scans", "single-staff", "real-scans-dev",
    "grandstaff-like-dev", "camera-like-dev", "single-staff-dev",
)  # fmt: skip
MEASURES = (1, 8)
# Monophonic songs and the Polish and Chopin single-staff parts (collections of `split`).
SINGLE_STAFF_COLLECTIONS = (
    "mono/creighton-nova-scotia", "mono/densmore-teton-sioux", "mono/foster-songs",
    "mono/schubert-songs", "polish-scores/1-staff", "chopin-first-editions/1-staff",
)  # fmt: skip
SINGLE_STAFF_MEASURES = (1, 4)
SINGLE_STAFF_PER_MOVEMENT = 4


@dataclass(frozen=True, kw_only=True)
class Example:
    """One test system. image: uint8[H, W] greyscale, 0 black .. 255 white; kern: the reference."""

    id: str
    collection: str
    image: np.ndarray
    kern: str


@dataclass(frozen=True, kw_only=True)
class SystemRef:
    """A reference system before rendering: its id, collection (`piano/joplin`) and kern."""

    id: str
    collection: str
    kern: str


@dataclass(kw_only=True)
class BuildReport:
    """What a build left out: movements the cutter rejected, systems verovio could not engrave,
    and (real scans) movements without marks or whose system counts differ."""

    cut_failures: list[str] = field(default_factory=list)
    render_failures: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (movement, reason)
    movements: int = 0


def piano_movements(data: Path, *, heldout: bool = True) -> list[Path]:
    """Held-out movements of every `kern/piano/*` collection in `data` (all of an unknown one),
    or with heldout=False its training movements."""
    piano = Path(data) / "kern" / "piano"
    if not piano.is_dir():
        return []
    collections = sorted(f"piano/{d.name}" for d in piano.iterdir() if d.is_dir())
    return (test_files if heldout else train_files)(data, collections)


def example_seed(seed: int, key: str) -> np.random.Generator:
    """A generator fixed by the set seed and a movement or example id (never Python's hash())."""
    digest = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little")
    return np.random.default_rng([seed, digest])


def _cut_movement(
    path: Path, seed: int, measures: tuple[int, int], report: BuildReport
) -> tuple[str, list] | None:
    """(relpath, snippets) of one held-out movement, seeded by its path; None (and the reason
    in `report`) when the cutter rejects it."""
    relpath = kern_relpath(path)
    report.movements += 1
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
        return relpath, cut_by_measures(text, example_seed(seed, relpath), measures=measures)
    except CutError as exc:
        report.cut_failures.append(f"{relpath}: {exc}")
        return None


def _refs(relpath: str, snippets) -> list[SystemRef]:
    collection = relpath.rpartition("/")[0]
    return [
        SystemRef(id=f"{relpath}#{s.index}", collection=collection, kern=s.kern) for s in snippets
    ]


def grandstaff_systems(
    data: Path, *, seed: int = 0, report: BuildReport | None = None, heldout: bool = True
) -> list[SystemRef]:
    """The kern side of grandstaff-like: every held-out (or training) piano movement in
    N-measure chunks."""
    report = report if report is not None else BuildReport()
    systems: list[SystemRef] = []
    for path in piano_movements(data, heldout=heldout):
        if (cut := _cut_movement(path, seed, MEASURES, report)) is not None:
            systems += _refs(*cut)
    return systems


def _rendered(
    systems: list[SystemRef],
    report: BuildReport,
    options: RenderOptions,
    workers: int,
    batch: int = 64,
) -> Iterator[tuple[SystemRef, np.ndarray]]:
    with SafeRenderer(options, workers=workers) as renderer:
        for start in range(0, len(systems), batch):
            chunk = systems[start : start + batch]
            for system, image in zip(
                chunk, renderer.render_all([s.kern for s in chunk]), strict=True
            ):
                if image is None:
                    report.render_failures.append(system.id)
                    continue
                yield system, image


def _examples(
    systems: list[SystemRef], report: BuildReport, options: RenderOptions, workers: int
) -> Iterator[Example]:
    for system, image in _rendered(systems, report, options, workers):
        yield Example(id=system.id, collection=system.collection, image=image, kern=system.kern)


def grandstaff_like(
    data: Path,
    *,
    seed: int = 0,
    limit: int | None = None,
    options: RenderOptions = DEFAULT,
    workers: int = 1,
    report: BuildReport | None = None,
    heldout: bool = True,
) -> Iterator[Example]:
    """Clean one-system renders of the held-out (or training) piano systems (the first `limit`
    systems)."""
    report = report if report is not None else BuildReport()
    systems = grandstaff_systems(data, seed=seed, report=report, heldout=heldout)[:limit]
    yield from _examples(systems, report, options, workers)


def camera_like(
    data: Path,
    *,
    seed: int = 0,
    limit: int | None = None,
    options: RenderOptions = DEFAULT,
    workers: int = 1,
    report: BuildReport | None = None,
    heldout: bool = True,
) -> Iterator[Example]:
    """grandstaff-like through `augment_camera`, each example seeded by (seed, id)."""
    for example in grandstaff_like(
        data, seed=seed, limit=limit, options=options, workers=workers, report=report,
        heldout=heldout,
    ):  # fmt: skip
        image = augment_camera(example.image, example_seed(seed, "camera/" + example.id))
        yield Example(id=example.id, collection=example.collection, image=image, kern=example.kern)


# --- single staff -------------------------------------------------------------------------------


def single_staff_movements(data: Path, *, heldout: bool = True) -> list[Path]:
    """Held-out (or training) movements of the single-staff collections present in `data`."""
    return (test_files if heldout else train_files)(data, list(SINGLE_STAFF_COLLECTIONS))


def single_staff_systems(
    data: Path, *, seed: int = 0, report: BuildReport | None = None, heldout: bool = True
) -> list[SystemRef]:
    """The kern side of single-staff: up to `SINGLE_STAFF_PER_MOVEMENT` 1-4-measure chunks of
    every held-out (or training) single-staff movement, in movement then chunk order."""
    report = report if report is not None else BuildReport()
    systems: list[SystemRef] = []
    for path in single_staff_movements(data, heldout=heldout):
        if (cut := _cut_movement(path, seed, SINGLE_STAFF_MEASURES, report)) is None:
            continue
        relpath, snippets = cut
        snippets = [s for s in snippets if s.measures >= 1]
        if any(s.kern.split("\n", 1)[0] != "**kern" for s in snippets):
            report.skipped.append((relpath, "more than one **kern spine"))
            continue
        count = min(SINGLE_STAFF_PER_MOVEMENT, len(snippets))
        chosen = example_seed(seed, "single-staff/" + relpath).choice(
            len(snippets), size=count, replace=False
        )
        systems += _refs(relpath, [snippets[i] for i in sorted(chosen)])
    return systems


def single_staff(
    data: Path,
    *,
    seed: int = 0,
    limit: int | None = None,
    options: RenderOptions = DEFAULT,
    workers: int = 1,
    report: BuildReport | None = None,
    heldout: bool = True,
) -> Iterator[Example]:
    """Clean one-staff renders of the held-out (or training) single-staff systems (the first
    `limit`)."""
    report = report if report is not None else BuildReport()
    systems = single_staff_systems(data, seed=seed, report=report, heldout=heldout)[:limit]
    yield from _examples(systems, report, options, workers)


def source_folder(name: SetName, data: Path) -> Path:
    """The folder of `data` a set is built from (to tell a user which one is missing)."""
    single = name.startswith("single-staff")
    return Path(data) / "kern" if single else Path(data) / "kern" / "piano"


# --- real scans ---------------------------------------------------------------------------------


def scan_pairs(data: Path, *, heldout: bool = True) -> list[tuple[Path, Path]]:
    """(kern, pdf) for held-out (or training) piano movements with a scan
    `scans/COLLECTION/NAME.pdf`."""
    pairs = []
    for kern in piano_movements(data, heldout=heldout):
        pdf = Path(data) / "scans" / kern.parent.name / f"{kern.stem}.pdf"
        if pdf.is_file():
            pairs.append((kern, pdf))
    return pairs


def system_crops(pdf: Path, *, dpi: float = 300) -> list[np.ndarray]:
    """Every system of every page, in reading order, as uint8[H, W] deskewed crops."""
    import cv2

    from omrgemma.image import analyze_page, read_pages

    crops: list[np.ndarray] = []
    for page in read_pages(pdf, dpi=dpi):
        layout = analyze_page(page.image, require_staves=False, source=str(pdf))
        height, width = page.image.shape
        deskewed = cv2.warpAffine(
            page.image, layout.transform, (width, height), flags=cv2.INTER_LINEAR, borderValue=255
        )
        for system in layout.systems:
            x0, y0, x1, y1 = (int(round(v)) for v in system.box)
            crop = deskewed[max(0, y0) : min(height, y1), max(0, x0) : min(width, x1)]
            if crop.size:
                crops.append(np.ascontiguousarray(crop))
    return crops


def real_scans(
    data: Path,
    *,
    limit: int | None = None,
    report: BuildReport | None = None,
    heldout: bool = True,
) -> Iterator[Example]:
    """Scanned system crops paired one to one with the kern cut at the edition's breaks, from
    held-out movements (or, heldout=False, training movements: real-scans-dev)."""
    report = report if report is not None else BuildReport()
    produced = 0
    for kern_path, pdf in scan_pairs(data, heldout=heldout):
        if limit is not None and produced >= limit:
            return
        relpath = kern_relpath(kern_path)
        report.movements += 1
        text = kern_path.read_text(encoding="utf-8", errors="replace")
        if count_break_marks(text) == 0:
            report.skipped.append((relpath, "no system-break marks"))
            continue
        try:
            snippets = cut_at_breaks(text)
        except CutError as exc:
            report.cut_failures.append(f"{relpath}: {exc}")
            continue
        crops = system_crops(pdf)
        if len(crops) != len(snippets):
            report.skipped.append(
                (relpath, f"{len(crops)} systems detected, {len(snippets)} in the kern")
            )
            continue
        collection = relpath.rpartition("/")[0]
        for snippet, crop in zip(snippets, crops, strict=True):
            if limit is not None and produced >= limit:
                return
            produced += 1
            yield Example(
                id=f"{relpath}#{snippet.index}",
                collection=collection,
                image=crop,
                kern=snippet.kern,
            )


def build(
    name: SetName,
    data: Path,
    *,
    seed: int = 0,
    limit: int | None = None,
    workers: int = 1,
    report: BuildReport | None = None,
) -> Iterator[Example]:
    """The named test (or dev) set."""
    common = dict(seed=seed, limit=limit, workers=workers, report=report)
    if name in ("grandstaff-like", "grandstaff-like-dev"):
        return grandstaff_like(data, heldout=not name.endswith("-dev"), **common)
    if name in ("camera-like", "camera-like-dev"):
        return camera_like(data, heldout=not name.endswith("-dev"), **common)
    if name == "real-scans":
        return real_scans(data, limit=limit, report=report)
    if name == "real-scans-dev":
        return real_scans(data, limit=limit, report=report, heldout=False)
    if name in ("single-staff", "single-staff-dev"):
        return single_staff(data, heldout=name == "single-staff", **common)
    raise ValueError(f"unknown test set {name!r}; choose from {', '.join(SET_NAMES)}")

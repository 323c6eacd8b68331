"""Systems read staff by staff: split a system image into staves, read each, join the kern.

A staff-level model (input height * 4 <= width, e.g. 64 x 512, or `"unit": "staff"` in the model
folder's `inference.json`; see `omrgemma.recognizer.model_unit`) reads one staff per image. Page
analysis and the test sets hand out whole systems, so `system_reader` wraps such a recognizer:

    reader = system_reader(recognizer)         # the recognizer itself when it reads systems
    results = reader.recognize(system_images)  # one SystemResult per system, spines joined

For each system image, `split_staves` finds the staves with `omrgemma.image.staves` and cuts one
image per staff, top to bottom; every staff of every system goes to the model in one call
(batched by the recognizer); `omrgemma.kern.join.join_staves` joins each system's staves into
one kern with the lowest staff as the first spine. A system with one staff (or none found) is
read whole and passes through unchanged. Before the join, the staves of a system are made to
agree on the meter: a staff whose `*M` line differs from the system's surest one is read again,
forced to write that line (`omrgemma.pipeline.meter`; a second model call for those staves).

Measures: each staff is read with at most as many measures as its system shows barlines
(`omrgemma.pipeline.barlines`, `omrgemma.measure_budget`; none for a lone staff), and a system
of more than `piece_measures` measures (the model's `inference.json`) is cut at its barlines
into pieces: the first pieces' staves are read first, the later pieces' staves in one more
call, each begun with its staff's header, and each staff's readings put back together
(`omrgemma.pipeline.chunks`).

Confidence: a joined result keeps each staff's own result in `SystemResult.staves`;
`joined_measure_confidence` scores measure k of the system as the lowest of the staves' scores
for their measure k (a measure padded with rests takes the staves that have it), so a measure is
as trustworthy as its least trustworthy staff. The joined result's `token_logprobs` are all the
staves' tokens, so the system's and the score's mean confidence cover every token read.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from omrgemma.image.layout import Staff
from omrgemma.kern.parse import Kind, parse
from omrgemma.pipeline import confidence as conf
from omrgemma.pipeline.barlines import measure_ends
from omrgemma.pipeline.chunks import Piece, concatenate, cut_system, header
from omrgemma.pipeline.meter import meter_starts
from omrgemma.recognizer import SystemResult

# Staff spacings (pixels) below this are searched on an enlarged copy, as page analysis does.
_MIN_SPACING = 10.0
_STRETCH = 2  # x stretch for the staff search (see find_system_staves)
_BACKGROUND = 15  # pixels: the neighbourhood whose lightest pixel is the paper
_CONTRAST_SHARE = 0.15  # of the 99.5th percentile contrast: ink
_MIN_CONTRAST = 8  # grey levels: never ink below this (paper texture, JPEG noise)
_MIN_COVERAGE = 0.3  # a staff's lines must have ink in this share of the columns
_RELATIVE_COVERAGE = 0.5  # ... and in half as many as the best staff of the system
_LINE_INK = 160  # grey levels: darker is a staff line's ink (anti-aliased lines render ~120)
_NEIGHBOUR_REACH = 2.0  # staff spacings: ink at a cut edge this far from the lines is a neighbour's


def split_staves(system: np.ndarray, staves: list[Staff] | None = None) -> list[np.ndarray]:
    """uint8[H, W] system image (0 = black) -> one uint8[h, w] image per staff, top to bottom.

    Staves come from `find_system_staves` (or `staves`, found in it before). Neighbouring
    staves are cut halfway across the gap between them, so ledger lines on either side stay with
    their staff; the outer staves keep a whole gap above (below) them, within the image. Each cut is trimmed of white borders as
    training renders are (`trim_white`). Fewer than two staves found: the image itself, uncut
    but trimmed the same way (page margins around one staff would otherwise shrink it in the
    model input, where a model with full-height patches sees a staff of another size).
    """
    from omrgemma.data.kern_examples import trim_white

    gray = _gray(system)
    staves = find_system_staves(gray) if staves is None else staves
    if len(staves) < 2:
        return [trim_white(gray)]

    height, width = gray.shape
    gaps = [lower.top - upper.bottom for upper, lower in zip(staves[:-1], staves[1:], strict=True)]
    outer = float(np.mean(gaps))
    first, last = staves[0], staves[-1]
    # cut rows: above the first staff, halfway across each gap, below the last staff; a slanted
    # staff reaches further at its ends
    cuts = [int(np.floor(first.top - outer - abs(first.slope) * width / 2))]
    cuts += [round((a.bottom + b.top) / 2) for a, b in zip(staves[:-1], staves[1:], strict=True)]
    cuts += [int(np.ceil(last.bottom + outer + abs(last.slope) * width / 2)) + 1]
    crops = []
    for index, (y0, y1) in enumerate(zip(cuts[:-1], cuts[1:], strict=True)):
        top = max(0, y0)
        crop = np.ascontiguousarray(gray[top : min(height, y1)])
        staff = staves[index]
        slack = abs(staff.slope) * width / 2
        crop = drop_neighbour_ink(
            crop, (staff.top - top - slack, staff.bottom - top + slack), staff.spacing,
            cut_above=index > 0, cut_below=index < len(staves) - 1,
        )  # fmt: skip
        crops.append(trim_white(cut_system_start(crop)))
    return crops


def drop_neighbour_ink(
    crop: np.ndarray,
    lines: tuple[float, float],
    spacing: float,
    *,
    cut_above: bool,
    cut_below: bool,
) -> np.ndarray:
    """The staff cut `crop` without the neighbouring staves' ink that reaches across the cut.

    Stems, beams and slurs of the next staff that cross the halfway line end in the crop as
    fragments touching its cut edge (`cut_above`/`cut_below`: that edge is a cut between staves,
    not the system's outer margin), where a staff rendered alone (training) has white. A stroke
    (8-connected ink on the local-contrast mask, at least a spacing tall or wide: paper grain is
    left alone) that touches a cut edge and stays more than `_NEIGHBOUR_REACH` spacings away
    from the staff's lines (`lines`: top and bottom line rows in the crop) is inpainted from the
    paper around it. The staff's own ink rarely crosses halfway across a gap without reaching
    its lines; a note three ledger lines out, its stem cut, is within reach (at 1 spacing it is
    not). On 200 staves of 100 systems cut from training movements, reaches of 0.5 to 3
    spacings all read within 0.6 SER points of no dropping at all (56.1 %): the stage-8 model
    knows those pieces. On the test sets, with the stage-8 model, first 100 systems of each set
    (system SER %, valid %, note F1): GrandStaff-like 57.0 / 68 / 0.088 -> 51.9 / 70 / 0.092; camera-like 62.1 / 63 / 0.040
    -> 61.3 / 62 / 0.039; real scans 63.8 / 66 / 0.024 -> 63.3 / 68 / 0.026.
    """
    import cv2

    if not (cut_above or cut_below):
        return crop
    ink = contrast_ink(crop)
    _, labels, stats, _ = cv2.connectedComponentsWithStats(ink, connectivity=8)
    height = crop.shape[0]
    near_top = lines[0] - _NEIGHBOUR_REACH * spacing
    near_bottom = lines[1] + _NEIGHBOUR_REACH * spacing
    top, tall = stats[:, cv2.CC_STAT_TOP], stats[:, cv2.CC_STAT_HEIGHT]
    wide = stats[:, cv2.CC_STAT_WIDTH]
    stroke = np.maximum(tall, wide) >= spacing  # a stem, beam or slur; not paper grain
    from_above = cut_above & (top == 0) & (top + tall - 1 < near_top)
    from_below = cut_below & (top + tall == height) & (top > near_bottom)
    drop = np.flatnonzero(stroke & (from_above | from_below))
    drop = drop[drop > 0]  # label 0 is the paper
    if drop.size == 0:
        return crop
    mask = np.isin(labels, drop).astype(np.uint8)
    mask = cv2.dilate(mask, np.ones((3, 3), np.uint8))  # with the anti-aliased rim
    # filled in from the paper around it: a photo's paper is grey and grainy, not 255
    return cv2.inpaint(crop, mask, 3, cv2.INPAINT_TELEA)


def cut_system_start(staff: np.ndarray) -> np.ndarray:
    """A staff cut from a system, without the brace and the system's first barline at its left.

    Every staff of a piano system starts at the vertical line that joins the staves, with the
    brace left of it; a staff rendered alone (what a staff model was trained on) starts with its
    lines. Cutting both off keeps the clef and key signature where training put them: on the
    first 48 GrandStaff-like systems the stage-7 model then reads the key right on 77 of 96
    staves instead of 55 (SER 57.7 -> 55.8 %; on 32 real-scan systems 104.6 -> 79.1 %). The staff's lines are the rows dark across half the width; they start at the first
    column where all of them have ink, and a barline there (dark over the whole staff) is cut
    with them. An image where five lines are not found comes back as it was.
    """
    dark = staff < _LINE_INK
    rows = np.flatnonzero(dark.mean(axis=1) > 0.5)
    if rows.size == 0:
        return staff
    groups = np.split(rows, np.flatnonzero(np.diff(rows) > 1) + 1)
    if len(groups) != 5:
        return staff
    centres = [int(group.mean()) for group in groups]
    on_all_lines = dark[centres].all(axis=0)
    if not on_all_lines.any():
        return staff
    left = int(np.argmax(on_all_lines))
    spacing = (centres[-1] - centres[0]) / 4
    across = dark[centres[0] : centres[-1] + 1].mean(axis=0) > 0.9  # a barline's columns
    right = left
    while right < staff.shape[1] and across[right]:
        right += 1
    if right - left > spacing:  # a thick block, not a barline: leave the image alone
        return staff
    if right == left and not dark[:, : max(left - 2, 0)].any():
        return staff  # no barline, and no brace: at most the lines' anti-aliased ends
    return np.ascontiguousarray(staff[:, right:])


def find_system_staves(gray: np.ndarray) -> list[Staff]:
    """The staves of one system image (uint8[H, W] grey), top to bottom, in its pixels.

    `omrgemma.image.staves.find_staves` is made for pages; a lone system, rendered small or
    photographed, needs three things more:
    - ink from local contrast (darker than the brightest pixel nearby by a share of the image's
      strongest contrast), so faint, blurred or unevenly lit staff lines are kept;
    - the search is run on the ink stretched `_STRETCH` times along x, which lengthens the
      lines of a narrow system past the finder's minimum and flattens residual slants; and once
      more, stretched further, on the ink without its thick strokes (beams, noteheads, stems),
      which a row of close beams can otherwise turn into a staff that hides a real one;
    - every staff found is scored by its line coverage (the share of columns where at least four
      of its five lines have ink); staves below half the best are ledger lines or beams, and of
      two that overlap the better covered one is kept.
    """
    import cv2

    from omrgemma.image.staves import find_staves, staff_metrics

    scale = 1.0
    ink = contrast_ink(gray)
    thickness, spacing = staff_metrics(_long_lines(ink))
    if spacing < _MIN_SPACING:  # lines a pixel thin: look on an enlarged copy, as pages do
        scale = min(_MIN_SPACING * 1.5 / spacing, 4.0)
        size = (round(gray.shape[1] * scale), round(gray.shape[0] * scale))
        ink = contrast_ink(cv2.resize(gray, size, interpolation=cv2.INTER_LINEAR))
        thickness, spacing = thickness * scale, spacing * scale  # noise would mislead a re-count
    tall = max(3, round(2 * thickness + 2))
    thick = cv2.morphologyEx(ink, cv2.MORPH_OPEN, np.ones((tall, 1), np.uint8))
    found: list[tuple[float, Staff]] = []
    for mask, stretch in ((ink, _STRETCH), (ink & (1 - thick), _STRETCH + 1)):
        wide = cv2.resize(mask, (mask.shape[1] * stretch, mask.shape[0]),
                          interpolation=cv2.INTER_NEAREST)  # fmt: skip
        for staff in find_staves(wide, spacing=spacing, thickness=thickness):
            staff = _unstretched(staff, stretch)
            found.append((_coverage(ink, staff), staff))
    best = max((c for c, _ in found), default=0.0)
    kept: list[Staff] = []
    for cover, staff in sorted(found, key=lambda item: -item[0]):
        if cover < max(_MIN_COVERAGE, _RELATIVE_COVERAGE * best):
            break
        if all(abs(staff.top - other.top) > 4.5 * spacing for other in kept):
            kept.append(staff)
    return sorted((_scaled(s, 1 / scale) for s in kept), key=lambda s: s.top)


def _gray(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 3:
        image = image[..., :3].mean(axis=-1).round()
    return image.astype(np.uint8)


def contrast_ink(gray: np.ndarray) -> np.ndarray:
    """uint8[H, W] mask of pixels darker than their neighbourhood's white by a share of the
    image's strongest such contrast (so grey, blurred lines count; paper shading does not)."""
    import cv2

    background = cv2.dilate(gray, np.ones((_BACKGROUND, _BACKGROUND), np.uint8))
    contrast = background.astype(np.int16) - gray
    strong = float(np.percentile(contrast, 99.5))
    return (contrast > max(_MIN_CONTRAST, _CONTRAST_SHARE * strong)).astype(np.uint8)


def _long_lines(ink: np.ndarray) -> np.ndarray:
    """Only the ink of long horizontal runs, so noise does not count in the line metrics."""
    import cv2

    return cv2.morphologyEx(ink, cv2.MORPH_OPEN, np.ones((1, _BACKGROUND), np.uint8))


def _unstretched(staff: Staff, stretch: int) -> Staff:
    return replace(staff, x0=staff.x0 / stretch, x1=staff.x1 / stretch,
                   slope=staff.slope * stretch)  # fmt: skip


def _scaled(staff: Staff, factor: float) -> Staff:
    if factor == 1.0:
        return staff
    return replace(staff, top=staff.top * factor, bottom=staff.bottom * factor,
                   line_ys=tuple(y * factor for y in staff.line_ys),
                   spacing=staff.spacing * factor, thickness=staff.thickness * factor,
                   x0=staff.x0 * factor, x1=staff.x1 * factor)  # fmt: skip


def _coverage(ink: np.ndarray, staff: Staff) -> float:
    """Share of the image's columns where at least four of the staff's five lines have ink."""
    height, width = ink.shape
    columns = np.arange(width)
    drift = staff.slope * (columns - width / 2)
    present = np.zeros(width, np.int32)
    for y in staff.line_ys:
        hit = np.zeros(width, bool)
        for offset in (-1, 0, 1):
            rows = np.clip(np.round(y + drift).astype(int) + offset, 0, height - 1)
            hit |= ink[rows, columns] > 0
        present += hit
    return float((present >= 4).mean())


def system_crop_size(staff_size: int | tuple[int, int]) -> tuple[int, int]:
    """The system crop to cut for a staff model of input `staff_size` (H, W): 2W x 2W.

    Twice the model's width along the staff, so each staff, cut from the crop, is shrunk (not
    enlarged) into the model input; square, since a system may hold one staff or six.
    """
    width = staff_size if isinstance(staff_size, int) else staff_size[1]
    return (2 * width, 2 * width)


@dataclass(kw_only=True)
class StaffReader:
    """A staff-level recognizer that reads whole systems (see the module docstring).

    inner: the recognizer (anything with `recognize(images) -> list[SystemResult]`, or only
    `predict(images) -> list[str]`), reading one staff per image. image_size: the system crop
    page analysis should cut for it (`Recognizer.image_size` plays this part for a system
    model); the model's own input is `staff_size`.
    """

    inner: Any
    image_size: tuple[int, int]
    agree_meter: bool = True  # re-read staves whose meter differs (see the module docstring)
    count_measures: bool = True  # read each staff with the system's barline count of measures
    piece_measures: int | None = None  # longer systems are read in pieces of this many measures
    timings: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.timings = getattr(self.inner, "timings", self.timings)
        self.timings.setdefault("staves", 0.0)

    @property
    def staff_size(self) -> int | tuple[int, int]:
        return self.inner.image_size

    @property
    def batch_size(self) -> int:
        return getattr(self.inner, "batch_size", 8)

    @property
    def settings(self) -> dict[str, Any]:
        return {**getattr(self.inner, "settings", {}), "unit": "staff",
                "system_size": list(self.image_size),
                "meter": "agreed" if self.agree_meter else "per staff",
                "measures": "barlines" if self.count_measures else "free",
                "piece_measures": self.piece_measures}  # fmt: skip

    def __getattr__(self, name: str) -> Any:  # model_dir, device, params ... of the model
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def predict(self, images: Sequence[np.ndarray]) -> list[str]:
        """uint8[H, W] system images -> one (joined) kern string each."""
        return [result.kern for result in self.recognize(images)]

    def recognize(self, images: Sequence[np.ndarray]) -> list[SystemResult]:
        """Split every system into pieces of at most `piece_measures` measures and each piece
        into staves; read the first pieces' staves in one call, re-read the staves whose meter
        disagrees with the system's surest one (`omrgemma.pipeline.meter`), read the later
        pieces' staves (each begun with its staff's header) in one more call, put each staff's
        pieces together and join each system's staves."""
        began = time.perf_counter()
        systems = [self._pieces(image) for image in images]
        split = [[split_staves(p.image, p.staves) for p in pieces] for pieces in systems]
        self.timings["staves"] += time.perf_counter() - began
        firsts = [parts[0] for parts in split]
        staves = [staff for parts in firsts for staff in parts]
        measures = [p[0].measures for p, parts in zip(systems, firsts, strict=True) for _ in parts]
        read = self._read(staves, measures) if staves else []
        bounds = list(itertools.accumulate((len(parts) for parts in firsts), initial=0))
        if self.agree_meter:
            self._agree_on_meter(staves, read, bounds, measures)
        mine = [read[a:b] for a, b in itertools.pairwise(bounds)]
        mine = self._read_later_pieces(systems, split, mine)
        return [own[0] if len(own) == 1 else joined_result(own) for own in mine]

    def _pieces(self, image: np.ndarray) -> list[Piece]:
        gray = _gray(image)
        staves = find_system_staves(gray)
        # pieces need forced starts, which only a recognizer with `recognize` takes
        most = self.piece_measures if hasattr(self.inner, "recognize") else None
        counting = self.count_measures or most is not None
        ends = measure_ends(gray, staves) if counting else []
        pieces = cut_system(gray, staves, ends, most=most)
        if not self.count_measures:
            pieces = [replace(piece, measures=None) for piece in pieces]
        return pieces

    def _read_later_pieces(
        self,
        systems: list[list[Piece]],
        split: list[list[list[np.ndarray]]],
        firsts: list[list[SystemResult]],
    ) -> list[list[SystemResult]]:
        """Each system's staves read over all its pieces: the later pieces' staves are read in
        one call, each forced to begin with the header of its staff's first reading."""
        wanted = [
            (system, piece, staff)
            for system, parts in enumerate(split)
            for piece in range(1, len(parts))
            for staff in range(min(len(parts[piece]), len(firsts[system])))
        ]
        if not wanted:
            return firsts
        starts = [header(firsts[i][j].kern) for i, _, j in wanted]
        again = self._read(
            [split[i][k][j] for i, k, j in wanted],
            [systems[i][k].measures for i, k, _ in wanted],
            starts,
        )
        later: dict[tuple[int, int], list[tuple[SystemResult, str]]] = {}
        for (i, _, j), result, start in zip(wanted, again, starts, strict=True):
            later.setdefault((i, j), []).append((result, start))
        return [
            [self._whole_staff(first, later.get((i, j), [])) for j, first in enumerate(own)]
            for i, own in enumerate(firsts)
        ]

    @staticmethod
    def _whole_staff(first: SystemResult, rest: list[tuple[SystemResult, str]]) -> SystemResult:
        """A staff's first reading and its later pieces' (each with its forced start) as one."""
        return concatenate([first, *(r for r, _ in rest)], ["", *(s for _, s in rest)])

    def _agree_on_meter(
        self,
        staves: list[np.ndarray],
        read: list[SystemResult],
        bounds: list[int],
        measures: list[int | None],
    ) -> None:
        """Re-read (in one call) the staves whose meter differs from their system's surest one,
        in place in `read`; system k holds staves bounds[k]:bounds[k + 1]."""
        starts: dict[int, str] = {}
        for a, b in itertools.pairwise(bounds):
            if b - a > 1:
                starts |= {a + i: text for i, text in meter_starts(read[a:b]).items()}
        if starts:
            again = self._read(
                [staves[i] for i in starts], [measures[i] for i in starts], list(starts.values())
            )
            for index, result in zip(starts, again, strict=True):
                read[index] = result

    def _read(
        self,
        staves: list[np.ndarray],
        measures: list[int | None],
        starts: list[str] | None = None,
    ) -> list[SystemResult]:
        if hasattr(self.inner, "recognize"):
            options: dict[str, Any] = {}
            if starts is not None:
                options["starts"] = starts
            if any(n is not None for n in measures):
                options["measures"] = measures
            return list(self.inner.recognize(staves, **options))
        empty = np.zeros(0, np.float32)
        return [SystemResult(kern=text, tokens=(), token_logprobs=empty, pieces=())
                for text in self.inner.predict(staves)]  # fmt: skip


def system_reader(recognizer: Any) -> Any:
    """`recognizer` wrapped in a `StaffReader` when it reads one staff, else itself."""
    if isinstance(recognizer, StaffReader) or getattr(recognizer, "unit", "system") != "staff":
        return recognizer
    return StaffReader(
        inner=recognizer,
        image_size=system_crop_size(recognizer.image_size),
        piece_measures=getattr(recognizer, "piece_measures", None),
    )


def joined_result(staves: Sequence[SystemResult]) -> SystemResult:
    """One system's result from its staves' results (top to bottom): kern joined, tokens,
    log-probabilities and pieces concatenated in staff order, the staves kept."""
    from omrgemma.kern.join import join_staves

    joined = join_staves([s.kern for s in staves])
    logprobs = [np.asarray(s.token_logprobs, np.float32) for s in staves]
    return SystemResult(
        kern=joined.text,
        tokens=tuple(t for s in staves for t in s.tokens),
        token_logprobs=np.concatenate(logprobs) if logprobs else np.zeros(0, np.float32),
        pieces=tuple(p for s in staves for p in s.pieces),
        finished=all(s.finished for s in staves),
        repeated=any(s.repeated for s in staves),
        staves=tuple(staves),
        problems=joined.problems,
    )


def joined_measure_confidence(result: SystemResult) -> list[conf.MeasureConfidence]:
    """Per measure of the joined kern: the lowest p of the staves' measures with that index."""
    per_staff = [
        conf.measure_confidence(s.kern, conf.token_spans(s.pieces), s.token_logprobs)
        for s in result.staves
    ]
    doc = parse(result.kern)
    scores = []
    for number, measure in enumerate(doc.measures, 1):
        present = [staff[number - 1] for staff in per_staff if number <= len(staff)]
        scores.append(
            conf.MeasureConfidence(
                measure=number,
                lines=measure_lines(doc, measure),
                p=min((s.p for s in present), default=1.0),
                tokens=sum(s.tokens for s in present),
            )
        )
    return scores


def measure_lines(doc, measure) -> tuple[int, int]:
    """(first, last) 1-based lines of a measure as `confidence.measure_confidence` counts them:
    from its first record (its first data record for the opening measure) to its closing bar."""
    start = measure.start
    if measure.opening is None:
        start = next(i for i in range(start, measure.stop) if doc.records[i].kind is Kind.DATA)
    return doc.records[start].line, doc.records[min(measure.stop, len(doc.records) - 1)].line


def problem_line(result: SystemResult, problem, text: str) -> int:
    """Where a join problem (a line of `result.kern`) is in `text`, the repaired kern: the same
    measure's first line there (repair may add or move lines)."""
    if text == result.kern:
        return problem.line
    before, after = parse(result.kern), parse(text)
    for index, measure in enumerate(before.measures):
        first, last = measure_lines(before, measure)
        if first <= problem.line <= last and index < len(after.measures):
            return measure_lines(after, after.measures[index])[0]
    return problem.line


__all__ = [
    "StaffReader",
    "find_system_staves",
    "joined_measure_confidence",
    "joined_result",
    "problem_line",
    "split_staves",
    "system_crop_size",
    "system_reader",
]

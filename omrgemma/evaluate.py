"""Score a recogniser on a test set: CER/SER/LER, note F1, and how many outputs are usable kern.

    predictor = load_predictor("baseline:empty")           # or a model folder
    report = evaluate(predictor, testsets.build("grandstaff-like", data_dir(), limit=50))
    report.overall.counts.ser, report.to_dict()

The runner knows nothing about models: anything with `predict(images) -> list[str]` is a
`Predictor`. `--model DIR` loads `omrgemma.recognizer.load_recognizer(DIR)` lazily, so JAX is
imported only when a real model runs; a model that reads one staff is wrapped by
`omrgemma.pipeline.staves.system_reader`, so it reads each test system staff by staff and is
scored on the joined kern. Two baselines give the floor every model must beat:
- `baseline:empty` predicts the empty string for every system;
- `baseline:common` predicts the most common training system: the most frequent snippet (after
  the metrics' measure-number normalisation) among the training piano movements cut into
  1-8-measure chunks, as the grandstaff-like set is cut (for the single-staff set: the training
  movements of its collections in 1-4-measure chunks).

Per example: edit counts (see `omrgemma.metrics`) of the prediction as the model wrote it; note
counts (when `music=True`) of the prediction after `omrgemma.kern.repair`, the kern `transcribe`
converts to MusicXML and MIDI, so note F1 measures the notes a user gets; `valid` (the raw
prediction has no `omrgemma.kern.validate` error) and `converts` (converter21 reads the raw
prediction and MusicXML can be written from it, without repair).
"""

from __future__ import annotations

import difflib
import heapq
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Protocol

import numpy as np

from omrgemma import metrics
from omrgemma.data.testsets import Example
from omrgemma.errors import ModelError


class Predictor(Protocol):
    def predict(self, images: list[np.ndarray]) -> list[str]:
        """uint8[H, W] greyscale system images -> one kern string per image."""
        ...


@dataclass(frozen=True)
class ConstantPredictor:
    """Predicts the same text for every image (the baselines)."""

    text: str

    def predict(self, images: list[np.ndarray]) -> list[str]:
        return [self.text] * len(images)


def most_common_training_system(data: Path, *, seed: int = 0, set_name: str = "") -> str:
    """The most frequent normalised snippet of the training movements of a test set's sources:
    the piano collections in 1-8-measure chunks, or (`set_name="single-staff"`) the single-staff
    collections in 1-4-measure chunks."""
    from omrgemma.data import testsets
    from omrgemma.data.snippets import CutError, cut_by_measures
    from omrgemma.data.split import kern_relpath, train_files

    piano = Path(data) / "kern" / "piano"
    if set_name == "single-staff":
        collections = list(testsets.SINGLE_STAFF_COLLECTIONS)
        measures = testsets.SINGLE_STAFF_MEASURES
    else:
        collections = (
            sorted(f"piano/{d.name}" for d in piano.iterdir() if d.is_dir())
            if piano.is_dir()
            else []
        )
        measures = testsets.MEASURES
    counts: Counter[str] = Counter()
    for path in train_files(data, collections):
        text = path.read_text(encoding="utf-8", errors="replace")
        try:
            snippets = cut_by_measures(
                text, testsets.example_seed(seed, kern_relpath(path)), measures=measures
            )
        except CutError:
            continue
        counts.update(metrics.normalize(s.kern) for s in snippets)
    if not counts:
        raise ModelError(
            "no training movements to take the common system from", path=Path(data) / "kern"
        )
    return counts.most_common(1)[0][0]


BASELINES = ("baseline:empty", "baseline:common")


def load_predictor(
    spec: str, *, data: Path | None = None, set_name: str = "", beam: int | None = None
) -> Predictor:
    """`baseline:empty`, `baseline:common` (for the test set `set_name`), or a model folder (via
    `omrgemma.recognizer`, decoding with `beam`, None: the model's own; a staff model wrapped to
    read whole systems)."""
    if spec == "baseline:empty":
        return ConstantPredictor("")
    if spec == "baseline:common":
        from omrgemma.settings import data_dir

        return ConstantPredictor(most_common_training_system(data or data_dir(), set_name=set_name))
    if spec.startswith("baseline:"):
        raise ModelError(f"unknown baseline {spec!r}", hint=f"choose from {', '.join(BASELINES)}")
    try:
        from omrgemma.pipeline.staves import system_reader
        from omrgemma.recognizer import load_recognizer
    except ImportError as exc:
        raise ModelError(
            "model loading not available",
            path=spec,
            hint=f"omrgemma.recognizer cannot be imported ({exc}); try --model baseline:empty",
        ) from exc
    return system_reader(load_recognizer(Path(spec), beam=beam))


# --- scoring ------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ExampleResult:
    id: str
    collection: str
    prediction: str
    reference: str
    counts: metrics.EditCounts
    notes: metrics.NoteCounts | None
    valid: bool
    converts: bool | None

    @property
    def cer(self) -> float:
        return self.counts.cer


@dataclass(kw_only=True)
class Totals:
    """Summed scores of a group of examples."""

    examples: int = 0
    counts: metrics.EditCounts = field(default_factory=metrics.EditCounts)
    notes: metrics.NoteCounts = field(default_factory=metrics.NoteCounts)
    valid: int = 0
    converts: int = 0
    music_scored: int = 0

    def add(self, result: ExampleResult) -> None:
        self.examples += 1
        self.counts = self.counts + result.counts
        self.valid += result.valid
        if result.notes is not None:
            self.music_scored += 1
            self.notes = self.notes + result.notes
            self.converts += bool(result.converts)

    def to_dict(self) -> dict[str, object]:
        n = max(self.examples, 1)
        row: dict[str, object] = {
            "examples": self.examples,
            "cer": round(self.counts.cer, 3),
            "ser": round(self.counts.ser, 3),
            "ler": round(self.counts.ler, 3),
            "valid_percent": round(100 * self.valid / n, 2),
            "edit_counts": vars(self.counts).copy(),
        }
        if self.music_scored:
            row |= {
                "note_precision": round(self.notes.precision, 4),
                "note_recall": round(self.notes.recall, 4),
                "note_f1": round(self.notes.f1, 4),
                "converts_percent": round(100 * self.converts / self.music_scored, 2),
                "note_counts": vars(self.notes).copy(),
            }
        return row


@dataclass(kw_only=True)
class Report:
    set_name: str
    model: str
    overall: Totals = field(default_factory=Totals)
    by_collection: dict[str, Totals] = field(default_factory=dict)
    worst: list[tuple[float, int, ExampleResult, np.ndarray]] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {
            "set": self.set_name,
            "model": self.model,
            "overall": self.overall.to_dict(),
            "by_collection": {c: t.to_dict() for c, t in sorted(self.by_collection.items())},
            "worst": [{"id": r.id, "cer": round(r.cer, 2)} for r in self.worst_first()],
        }

    def worst_first(self) -> list[ExampleResult]:
        return [entry[2] for entry in sorted(self.worst, key=lambda e: (-e[0], e[1]))]


def validates(kern: str) -> bool:
    from omrgemma.kern.validate import has_errors, validate

    return not has_errors(validate(kern))


@lru_cache(maxsize=512)
def converts_to_musicxml(kern: str) -> bool:
    """converter21 reads it and MusicXML can be written, without any repair."""
    from omrgemma.kern.convert import score_to_musicxml, to_score

    try:
        score_to_musicxml(to_score(kern))
    except Exception:  # noqa: BLE001 - any converter failure counts as "does not convert"
        return False
    return True


def _repaired(kern: str) -> str:
    from omrgemma.kern.repair import repair

    return repair(kern)[0] if kern.strip() else kern


def score_example(example: Example, prediction: str, *, music: bool) -> ExampleResult:
    notes = converts = None
    if music:
        reference_notes = metrics.kern_notes(example.kern) or Counter()
        notes = metrics.note_counts(_repaired(prediction), reference_notes)
        converts = converts_to_musicxml(prediction) if prediction.strip() else False
    return ExampleResult(
        id=example.id,
        collection=example.collection,
        prediction=prediction,
        reference=example.kern,
        # a trailing newline is file framing, not music: neither side is charged for it
        counts=metrics.edit_counts(prediction.rstrip("\n"), example.kern.rstrip("\n")),
        notes=notes,
        valid=bool(prediction.strip()) and validates(prediction),
        converts=converts,
    )


def evaluate(
    predictor: Predictor,
    examples: Iterable[Example],
    *,
    set_name: str = "",
    model: str = "",
    batch_size: int = 8,
    music: bool = True,
    keep_worst: int = 20,
    progress: Callable[[int], None] | None = None,
) -> Report:
    """Run `predictor` over `examples` in batches and sum the scores, overall and per collection."""
    report = Report(set_name=set_name, model=model)
    batch: list[Example] = []
    seen = 0

    def flush() -> None:
        nonlocal seen
        predictions = predictor.predict([e.image for e in batch])
        if len(predictions) != len(batch):
            raise ModelError(
                f"the predictor returned {len(predictions)} texts for {len(batch)} images"
            )
        for example, prediction in zip(batch, predictions, strict=True):
            result = score_example(example, prediction, music=music)
            report.overall.add(result)
            report.by_collection.setdefault(example.collection, Totals()).add(result)
            entry = (result.cer, -seen, result, example.image)
            if len(report.worst) < keep_worst:
                heapq.heappush(report.worst, entry)
            elif keep_worst:
                heapq.heappushpop(report.worst, entry)
            seen += 1
        if progress is not None:
            progress(seen)
        batch.clear()

    for example in examples:
        batch.append(example)
        if len(batch) >= batch_size:
            flush()
    if batch:
        flush()
    return report


def diff_text(reference: str, prediction: str) -> str:
    return "".join(
        difflib.unified_diff(
            reference.splitlines(keepends=True),
            prediction.splitlines(keepends=True),
            fromfile="reference",
            tofile="prediction",
        )
    )


def write_examples(report: Report, folder: Path) -> list[Path]:
    """The worst cases as NN-image.png, NN-reference.krn, NN-prediction.krn, NN-diff.txt."""
    import cv2

    from omrgemma.io import write_atomic

    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    images = {id(entry[2]): entry[3] for entry in report.worst}
    for rank, result in enumerate(report.worst_first(), start=1):
        stem = f"{rank:02d}-{result.id.replace('/', '_').replace('#', '-')}"
        ok, png = cv2.imencode(".png", images[id(result)])
        assert ok, "OpenCV failed to PNG-encode a greyscale array"
        written.append(write_atomic(folder / f"{stem}-image.png", png.tobytes()))
        written.append(write_atomic(folder / f"{stem}-reference.krn", result.reference))
        written.append(write_atomic(folder / f"{stem}-prediction.krn", result.prediction))
        written.append(
            write_atomic(
                folder / f"{stem}-diff.txt", diff_text(result.reference, result.prediction)
            )
        )
    return written

"""One score from start to end: analysis, model, stitched and checked kern, files out.

    report = transcribe_file(Path("score.pdf"), recognizer, Path("out"), TranscribeOptions())

The steps, each its own function so a batch can run them in different places:
1. `analysis.analyze_input`: pages, systems, crops (CPU; a worker process in a batch);
2. `Recognizer.recognize`: kern and token log-probabilities per system (the model); a model
   that reads one staff gets each system split into staves and the staves' kern joined
   (`omrgemma.pipeline.staves.system_reader`), system crops then cut at twice its width;
3. `assemble`: per system repair, validation and confidence, then `stitch` into one score with
   low-confidence measures and unfixed problems marked as `!!omrgemma:` comments;
4. `write_score`: `NAME.krn` always, the other formats through `omrgemma.kern.convert`, the
   `NAME.omrgemma.json` sidecar (what `preview` needs), and the preview page when asked.

When the model's kern cannot be converted as a whole, the systems with unfixed errors are
replaced by rests in the converted formats (MusicXML, MIDI, MEI, SVG) and reported; the `.krn`
keeps the model's text, marked. Outputs are never silently dropped.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from omrgemma.errors import ConversionError, KernError, NoStavesError, OmrError
from omrgemma.io import check_writable, write_atomic
from omrgemma.kern.parse import Kind, parse
from omrgemma.pipeline import confidence as conf
from omrgemma.pipeline.analysis import InputAnalysis, analyze_input
from omrgemma.pipeline.staves import joined_measure_confidence, problem_line, system_reader
from omrgemma.pipeline.stitch import SystemKern, recip, stitch

SIDECAR_SUFFIX = ".omrgemma.json"
SIDECAR_FORMAT = "omrgemma.transcription/1"
DEFAULT_FORMATS = ("krn", "musicxml", "midi")
# Problems that are normal in one system cut from a score: the stitched score is checked for them.
_JOIN_CODES = frozenset({"missing-terminator", "tie-unclosed", "tie-unopened", "slur-unclosed",
                         "slur-unopened"})  # fmt: skip
# Problems reported but converted as written (the kern is valid; nothing to replace by rests).
_KEPT_CODES = frozenset({"layout", "cut-off", "repeating", "staff-measures", "staff-durations"})


@dataclass(frozen=True, kw_only=True)
class TranscribeOptions:
    """formats: "krn" plus any of `omrgemma.kern.convert.FORMATS`. pages: "1-3,5" or None.
    low_confidence: measures below this geometric-mean token probability are marked."""

    formats: tuple[str, ...] = DEFAULT_FORMATS
    force: bool = False
    pages: str | None = None
    dpi: float = 300
    preview: bool = False
    low_confidence: float = conf.LOW_CONFIDENCE
    convert_timeout: float = 120


@dataclass(kw_only=True)
class ScoreReport:
    """What happened to one input; `to_dict()` is its manifest record and `--json` summary."""

    input: str
    status: str = "ok"  # ok | failed
    error: str | None = None
    error_kind: str | None = None
    pages: int = 0
    systems: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    problems: list[dict[str, Any]] = field(default_factory=list)
    low_confidence: list[dict[str, Any]] = field(default_factory=list)
    mean_confidence: float | None = None
    page_notes: list[dict[str, Any]] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, kw_only=True)
class AssembledScore:
    """The stitched kern and everything known about each system (for the sidecar and preview)."""

    kern: str
    convertible: str  # the kern the converters get (bad systems as rests when needed)
    systems: list[dict[str, Any]]
    problems: list[dict[str, Any]]
    low_confidence: list[dict[str, Any]]
    mean_confidence: float | None


def transcribe_file(path: Path, recognizer, out_dir: Path, options: TranscribeOptions,
                    *, stem: str | None = None) -> ScoreReport:  # fmt: skip
    """Every step for one input; raises the input's `OmrError` when it yields no music."""
    recognizer = system_reader(recognizer)
    analysis = analyze_input(path, target=recognizer.image_size, pages=options.pages,
                             dpi=options.dpi)  # fmt: skip
    began = time.perf_counter()
    results = recognizer.recognize([s.image for s in analysis.systems])
    return finish(analysis, results, out_dir, options, stem=stem,
                  model_seconds=time.perf_counter() - began)  # fmt: skip


def finish(analysis: InputAnalysis, results: list, out_dir: Path, options: TranscribeOptions,
           *, stem: str | None = None, model_seconds: float = 0.0,
           model: str | None = None) -> ScoreReport:  # fmt: skip
    """Steps 3 and 4 for an analysed and recognised input. Raises `OmrError` on failure."""
    report = ScoreReport(input=str(analysis.path), pages=len(analysis.pages))
    report.seconds = {**analysis.seconds, "model": model_seconds}
    report.page_notes = [{"page": p.index + 1, "note": p.note} for p in analysis.pages if p.note]
    if analysis.error is not None:
        raise OmrError(analysis.error)
    if not analysis.systems:
        raise NoStavesError(f"no staves found on any of its {len(analysis.pages)} page(s)",
                            path=analysis.path,
                            hint="is it sheet music? scan at 300 dpi or more")  # fmt: skip
    report.systems = len(analysis.systems)
    began = time.perf_counter()
    score = assemble(analysis, results, low_confidence=options.low_confidence)
    report.problems, report.low_confidence = score.problems, score.low_confidence
    report.mean_confidence = score.mean_confidence
    stem = stem or analysis.path.stem
    report.outputs = [str(p) for p in write_score(score, analysis, stem, out_dir, options,
                                                  report, model=model)]  # fmt: skip
    report.seconds["convert"] = time.perf_counter() - began
    report.seconds["total"] = sum(report.seconds.values())
    return report


def assemble(analysis: InputAnalysis, results: list, *, low_confidence: float) -> AssembledScore:
    """Per-system repair, validation and confidence; then the stitched, marked score."""
    from omrgemma.kern.validate import validate

    systems, texts, problems, low, logprobs = [], [], [], [], []
    for crop, result in zip(analysis.systems, results, strict=True):
        text, fixes = repair(result.kern)
        if result.staves:  # read staff by staff: each measure as sure as its least sure staff
            scores = joined_measure_confidence(result)
        else:
            spans = conf.token_spans(result.pieces)
            scores = conf.measure_confidence(result.kern, spans, result.token_logprobs)
        if text != result.kern:  # repair moved lines: score the repaired text's measures alike
            scores = _rescore(text, scores)
        doc = parse(text)
        found = [p for p in validate(doc) if p.severity == "error" and p.code not in _JOIN_CODES]
        found += [replace(p, line=problem_line(result, p, text)) for p in result.problems]
        located = [_problem(crop.number, _measure_of(doc, p.line), p) for p in found]
        if not doc.measures:
            located.append({"system": crop.number, "measure": None, "line": None,
                            "code": "no-music", "message": "the model wrote no notes or rests "
                            "for this system"})  # fmt: skip
        if result.repeated:
            located.append({"system": crop.number, "measure": None, "line": None,
                            "code": "repeating", "message": "the model got stuck repeating "
                            "itself and was stopped; the end of this system is missing"})  # fmt: skip
        elif not result.finished:
            located.append({"system": crop.number, "measure": None, "line": None,
                            "code": "cut-off", "message": "the model hit its token budget; the "
                            "end of this system is missing"})  # fmt: skip
        marked = conf.mark_low_confidence(
            text, scores, system=crop.number, threshold=low_confidence
        )
        marked = _mark_problems(marked, located)
        texts.append(SystemKern(text=marked, new_page=_first_on_page(analysis, crop)))
        problems += located
        low += [{"system": crop.number, "measure": s.measure, "p": round(s.p, 4)}
                for s in scores if s.p < low_confidence]  # fmt: skip
        logprobs += [float(v) for v in result.token_logprobs]
        systems.append({
            "number": crop.number, "page": crop.page + 1, "box": list(crop.box),
            "kern": text, "repairs": fixes, "finished": result.finished,
            "confidence": round(conf.system_confidence(result.token_logprobs), 4),
            "measures": [{"measure": s.measure, "p": round(s.p, 4)} for s in scores],
            "problems": located,
        } | ({"staves": [s.kern for s in result.staves]} if result.staves else {}))  # fmt: skip
    stitched = stitch(texts)
    for message in stitched.problems:
        number = int(message.split()[1].rstrip(":"))
        problems.append({"system": number, "measure": None, "line": None, "code": "layout",
                         "message": message})  # fmt: skip
    for entry in low:
        entry["score_measure"] = stitched.first_measure[entry["system"] - 1] + entry["measure"] - 1
    bad = {p["system"] for p in problems if p["code"] not in _KEPT_CODES}
    mean = float(sum(logprobs) / len(logprobs)) if logprobs else None
    return AssembledScore(
        kern=stitched.text,
        convertible=_with_rests(texts, bad, stitched.exclusives) if bad else stitched.text,
        systems=systems,
        problems=problems,
        low_confidence=low,
        mean_confidence=None if mean is None else round(float(2.718281828459045**mean), 4),
    )


def repair(text: str) -> tuple[str, list[str]]:
    """`omrgemma.kern.repair.repair`: (repaired text, one sentence per fix)."""
    from omrgemma.kern.repair import repair as kern_repair

    fixed, fixes = kern_repair(text)
    return fixed, [f"line {f.line}: {f.description}" for f in fixes]


def _rescore(text: str, scores: list[conf.MeasureConfidence]) -> list[conf.MeasureConfidence]:
    """Carry measure scores over to the repaired text's measures, in order (lines re-read)."""
    doc = parse(text)
    out = []
    for measure, score in zip(doc.measures, scores, strict=False):
        first_data = next((i for i in range(measure.start, measure.stop)
                           if doc.records[i].kind is Kind.DATA), measure.start)  # fmt: skip
        start = first_data if measure.opening is None else measure.start
        out.append(conf.MeasureConfidence(measure=score.measure,
                   lines=(doc.records[start].line, score.lines[1]), p=score.p,
                   tokens=score.tokens))  # fmt: skip
    return out


def _measure_of(doc, line: int) -> int | None:
    for number, measure in enumerate(doc.measures, 1):
        first = doc.records[measure.start].line if measure.start < len(doc.records) else 0
        last = doc.records[min(measure.stop, len(doc.records) - 1)].line
        if first <= line <= last:
            return number
    return None


def _problem(system: int, measure: int | None, problem) -> dict[str, Any]:
    return {"system": system, "measure": measure, "line": problem.line, "code": problem.code,
            "message": problem.message}  # fmt: skip


def _mark_problems(text: str, problems: list[dict[str, Any]]) -> str:
    """A `!!omrgemma: problem ...` comment before each line with an unfixed problem."""
    lines = text.split("\n")
    notes: dict[int, list[str]] = {}
    for p in problems:
        if p["line"]:
            where = f"system {p['system']}" + (f" measure {p['measure']}" if p["measure"] else "")
            notes.setdefault(p["line"], []).append(
                f"!!omrgemma: problem in {where}: {p['message']}"
            )
    out = []
    for number, line in enumerate(lines, 1):
        if number in notes:
            out += notes[number]
        out.append(line)
    return "\n".join(out)


def _first_on_page(analysis: InputAnalysis, crop) -> bool:
    page = next(p for p in analysis.pages if p.index == crop.page)
    return page.systems[0] is crop and crop.number > 1


def _with_rests(texts: list[SystemKern], bad: set[int], exclusives: tuple[str, ...]) -> str:
    """The score with the systems numbered in `bad` replaced by one rest measure per measure."""
    meter = _first_meter(texts)
    rest = (recip(meter) or "1") + "r"
    replaced = []
    for number, system in enumerate(texts, 1):
        if number not in bad:
            replaced.append(system)
            continue
        measures = max(1, len(parse(system.text).measures))
        row = "\t".join(rest if e == "**kern" else "." for e in exclusives)
        bar = "\t".join("=" for _ in exclusives)
        body = "\n".join(f"{row}\n{bar}" for _ in range(measures))
        note = f"!!omrgemma: system {number} replaced by rests here (unfixed problems)"
        replaced.append(SystemKern(text=f"{chr(9).join(exclusives)}\n{note}\n{body}\n",
                                   new_page=system.new_page))  # fmt: skip
    return stitch(replaced).text


def _first_meter(texts: list[SystemKern]):
    from fractions import Fraction

    for system in texts:
        for measure in parse(system.text).measures:
            for meter in measure.meters.values():
                if meter:
                    return meter
    return Fraction(4)


def write_score(score: AssembledScore, analysis: InputAnalysis, stem: str, out_dir: Path,
                options: TranscribeOptions, report: ScoreReport, *,
                model: str | None = None) -> list[Path]:  # fmt: skip
    """Write every output; checks for existing files first so nothing is half-replaced."""
    from omrgemma.kern.convert import SUFFIX, parse_formats

    out_dir = Path(out_dir)
    formats = [f for f in options.formats if f != "krn"]
    converted = parse_formats(formats) if formats else []
    kern_path = out_dir / f"{stem}.krn"
    sidecar = out_dir / f"{stem}{SIDECAR_SUFFIX}"
    for target in [kern_path, sidecar] + [out_dir / f"{stem}{SUFFIX[f]}" for f in converted
                                          if f not in ("svg", "png")]:  # fmt: skip
        check_writable(target, force=options.force)
    written: list[Path] = []
    if converted:
        written += _convert(score, stem, out_dir, converted, options, report)
    if "krn" in options.formats:
        written.append(write_atomic(kern_path, score.kern, force=options.force))
    data = sidecar_data(score, analysis, report, written, model=model)
    written.append(write_atomic(sidecar, json.dumps(data, indent=1) + "\n", force=options.force))
    if options.preview:
        from omrgemma.pipeline.preview import write_preview

        written.append(write_preview(sidecar, force=options.force))
    return written


def _convert(score: AssembledScore, stem: str, out_dir: Path, formats: list, options,
             report: ScoreReport) -> list[Path]:  # fmt: skip
    from omrgemma.kern.convert import write_outputs

    attempts = [score.convertible]
    if score.convertible != score.kern:
        report.problems.append({"system": None, "measure": None, "line": None,
                                "code": "rests", "message": "systems with unfixed problems are "
                                "rests in the converted formats; the .krn keeps the model's text"})  # fmt: skip
    last: OmrError | None = None
    for text in attempts + [_all_rests(score)]:
        try:
            paths = write_outputs(text, stem, out_dir, formats, force=options.force,
                                  timeout=options.convert_timeout)  # fmt: skip
        except (ConversionError, KernError) as exc:
            last = exc
            report.problems.append({"system": None, "measure": None, "line": None,
                                    "code": "conversion", "message": exc.format()})  # fmt: skip
            continue
        return [p for group in paths.values() for p in group]
    assert last is not None
    raise last


def _all_rests(score: AssembledScore) -> str:
    """Last resort for the converted formats: every system as rests (still one per system)."""
    texts = [SystemKern(text=s["kern"]) for s in score.systems]
    exclusives = tuple(parse(score.kern).spine_types) or ("**kern",)
    return _with_rests(texts, set(range(1, len(texts) + 1)), exclusives)


def sidecar_data(score: AssembledScore, analysis: InputAnalysis, report: ScoreReport,
                 written: list[Path], *, model: str | None) -> dict[str, Any]:  # fmt: skip
    """What `preview` needs to show a transcription again without the model."""
    return {
        "format": SIDECAR_FORMAT,
        "input": str(Path(analysis.path).resolve()),
        "model": model,
        "pages": [
            {
                "index": p.index,
                "shape": list(p.shape),
                "angle": p.angle,
                "transform": p.transform.tolist(),
                "note": p.note,
                "systems": [s.number for s in p.systems],
            }
            for p in analysis.pages
        ],  # fmt: skip
        "systems": score.systems,
        "problems": score.problems,
        "low_confidence": score.low_confidence,
        "mean_confidence": score.mean_confidence,
        "outputs": [p.name for p in written],
        "kern": score.kern,
        "report": {"pages": report.pages, "systems": report.systems},
    }

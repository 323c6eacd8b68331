"""Transcribe many inputs: the model loads once, pages are analysed in worker processes while
the model decodes batches of systems drawn from many pages, and every finished input is
recorded in `OUTDIR/manifest.jsonl`.

    summary = run_batch(Path("scans"), Path("out"), recognizer, BatchOptions(workers=2))

Crash safety: an input's outputs are written atomically, then its manifest line is appended,
flushed and fsynced. Killing the process at any moment loses at most the inputs in flight; a
rerun (resume is the default) skips inputs recorded "ok" with the same sha256 and settings, and
redoes the rest, overwriting any outputs they left (the batch owns the files it names in OUTDIR).
A failing input never stops the batch: it is recorded "failed" with its error.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import tempfile
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from omrgemma.errors import OmrError
from omrgemma.image.crops import Target
from omrgemma.io import remove_stale_temporaries
from omrgemma.pipeline.analysis import InputAnalysis, analyze_input
from omrgemma.pipeline.archive import Input, list_inputs
from omrgemma.pipeline.manifest import MANIFEST, Manifest, file_sha256, settings_key
from omrgemma.pipeline.transcribe import TranscribeOptions, finish


@dataclass(frozen=True, kw_only=True)
class BatchOptions:
    """workers: page-analysis processes (0: in this process). resume: skip inputs done before."""

    transcribe: TranscribeOptions = field(default_factory=TranscribeOptions)
    workers: int = 2
    resume: bool = True


@dataclass(kw_only=True)
class BatchSummary:
    inputs: int = 0
    done: int = 0
    skipped: int = 0
    failed: int = 0
    pages: int = 0
    systems: int = 0
    seconds: float = 0.0
    failures: list[tuple[str, str]] = field(default_factory=list)

    @property
    def pages_per_minute(self) -> float:
        return 60.0 * self.pages / self.seconds if self.seconds > 0 else 0.0


@dataclass(kw_only=True)
class _Job:
    input: Input
    sha256: str
    analysis: InputAnalysis | None = None
    results: list[Any] = field(default_factory=list)
    model_seconds: float = 0.0


Callback = Callable[[str, dict[str, Any]], None]


def run_batch(
    source: Path,
    out_dir: Path,
    recognizer,
    options: BatchOptions,
    *,
    on_event: Callback | None = None,
) -> BatchSummary:
    """Transcribe every input of `source` into `out_dir` (see the module docstring).

    on_event(kind, data) reports progress: "start" {inputs, todo}, "analysed" {input, pages,
    systems}, "decoded" {systems}, "finished" {record}.
    """
    from omrgemma.pipeline.staves import system_reader

    # A staff-level model reads each system staff by staff (crops are then cut for the wrapper).
    recognizer = system_reader(recognizer)
    notify = on_event or (lambda kind, data: None)
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out_dir)  # a killed run's half-written outputs
    manifest = Manifest(out_dir / MANIFEST)
    summary = BatchSummary()
    began = time.perf_counter()
    settings = settings_key({**recognizer.settings, **_settings(options.transcribe)})
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".omrgemma-extract-") as extract_dir:
        inputs = list_inputs(source, Path(extract_dir), skip=out_dir)
        records = manifest.read()
        summary.inputs = len(inputs)
        todo = []
        for item in inputs:
            digest = file_sha256(item.path) if item.path.is_file() else ""
            if options.resume and manifest.is_done(records, item.name, digest, settings):
                summary.skipped += 1
                continue
            todo.append(_Job(input=item, sha256=digest))
        notify("start", {"inputs": len(inputs), "todo": len(todo), "skipped": summary.skipped})

        def complete(job: _Job) -> None:
            record = _finish(job, out_dir, options, settings, recognizer)
            manifest.append(record)
            summary.done += record["status"] == "ok"
            if record["status"] != "ok":
                summary.failed += 1
                summary.failures.append((record["input"], record["error"]))
            summary.pages += record["pages"]
            summary.systems += record["systems"]
            notify("finished", {"record": record})

        _schedule(todo, recognizer, options, complete, notify)
    summary.seconds = time.perf_counter() - began
    manifest.write_csv()
    return summary


def _settings(options: TranscribeOptions) -> dict[str, Any]:
    return {"formats": sorted(options.formats), "pages": options.pages, "dpi": options.dpi,
            "preview": options.preview, "low_confidence": options.low_confidence}  # fmt: skip


def _schedule(todo: list[_Job], recognizer, options: BatchOptions, complete, notify) -> None:
    """Analyse ahead in workers, decode full batches of systems, finish inputs in any order."""
    waiting = deque(todo)
    in_flight: dict[cf.Future, _Job] = {}
    queue: deque[tuple[_Job, int]] = deque()  # (job, system index) still to decode
    target = recognizer.image_size
    opts = options.transcribe
    executor = (
        cf.ProcessPoolExecutor(options.workers, mp_context=multiprocessing.get_context("spawn"))
        if options.workers > 0
        else None
    )
    ahead = max(2, 2 * options.workers)
    try:
        while waiting or in_flight or queue:
            while waiting and len(in_flight) < ahead:
                job = waiting.popleft()
                in_flight[_submit(executor, job, target, opts)] = job
            if in_flight and len(queue) < recognizer.batch_size:
                done, _ = cf.wait(in_flight, return_when=cf.FIRST_COMPLETED)
                for future in done:
                    job = in_flight.pop(future)
                    job.analysis = _result(future, job)
                    systems = job.analysis.systems
                    notify("analysed", {"input": job.input.name, "pages": len(job.analysis.pages),
                                        "systems": len(systems)})  # fmt: skip
                    if not systems:
                        complete(job)
                    queue.extend((job, i) for i in range(len(systems)))
                continue
            chunk = [queue.popleft() for _ in range(min(recognizer.batch_size, len(queue)))]
            began = time.perf_counter()
            results = recognizer.recognize([job.analysis.systems[i].image for job, i in chunk])
            share = (time.perf_counter() - began) / max(len(chunk), 1)
            notify("decoded", {"systems": len(chunk)})
            for (job, _), result in zip(chunk, results, strict=True):
                job.results.append(result)
                job.model_seconds += share
                if len(job.results) == len(job.analysis.systems):
                    complete(job)
    finally:
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)


def _submit(executor, job: _Job, target: Target, opts: TranscribeOptions) -> cf.Future:
    if executor is None:  # in-process: a future that is already done
        future: cf.Future = cf.Future()
        future.set_result(analyze_input(job.input.path, target=target, pages=opts.pages,
                                        dpi=opts.dpi))  # fmt: skip
        return future
    return executor.submit(analyze_input, job.input.path, target=target, pages=opts.pages,
                           dpi=opts.dpi)  # fmt: skip


def _result(future: cf.Future, job: _Job) -> InputAnalysis:
    try:
        return future.result()
    except Exception as exc:  # a worker crashed (out of memory, a decoder bug): this input only
        return InputAnalysis(path=job.input.path, error=f"{job.input.path}: analysis crashed "
                             f"({type(exc).__name__}: {exc})", error_kind="crash")  # fmt: skip


def _finish(job: _Job, out_dir: Path, options: BatchOptions, settings: str, recognizer) -> dict:
    """Write one input's outputs and return its manifest record (never raises OmrError)."""
    target_dir = out_dir / job.input.relative_dir
    opts = replace(options.transcribe, force=True)
    began = time.perf_counter()
    base = {"input": job.input.name, "sha256": job.sha256, "settings": settings,
            "finished_at": datetime.now(UTC).isoformat(timespec="seconds")}  # fmt: skip
    analysis = job.analysis
    assert analysis is not None
    try:
        report = finish(analysis, job.results, target_dir, opts, stem=job.input.stem,
                        model_seconds=job.model_seconds,
                        model=str(recognizer.model_dir))  # fmt: skip
    except OmrError as exc:
        seconds = {**analysis.seconds, "model": job.model_seconds}
        seconds["total"] = sum(seconds.values()) + time.perf_counter() - began
        return {**base, "status": "failed", "error": exc.format(),
                "error_kind": type(exc).__name__, "pages": len(analysis.pages),
                "systems": len(analysis.systems), "seconds": seconds, "outputs": [],
                "problems": [], "low_confidence": [], "mean_confidence": None,
                "page_notes": [{"page": p.index + 1, "note": p.note}
                               for p in analysis.pages if p.note]}  # fmt: skip
    record = {**report.to_dict(), **base}
    record["outputs"] = [Path(p).relative_to(out_dir).as_posix() for p in report.outputs]
    total = report.seconds.get("total") or 0.0
    record["pages_per_minute"] = round(60 * report.pages / total, 2) if total else None
    return record

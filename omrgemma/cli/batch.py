"""`omrgemma batch`: a folder, archive or list of scores, resumably, with a manifest."""

from __future__ import annotations

import time
from pathlib import Path

import click

from omrgemma.errors import PartialFailure
from omrgemma.pipeline.cli_options import load, model_options, output_options, parse_output_formats


@click.command("batch")
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.option("-o", "--output", "out_dir", required=True,
              type=click.Path(file_okay=False, path_type=Path), help="Output folder.")  # fmt: skip
@output_options
@model_options
@click.option("--workers", type=click.IntRange(0, 64), default=2, show_default=True,
              help="Processes reading and analysing pages (0: none, all in one process).")  # fmt: skip
@click.option("--resume/--no-resume", default=True, show_default=True,
              help="Skip inputs the manifest records as done with the same file and settings.")  # fmt: skip
@click.option("-q", "--quiet", is_flag=True, help="No progress or summary on stderr.")
def command(source, out_dir, formats, force, pages, dpi, preview, model_dir, resolution, beam,
            quantize, device, batch_size, workers, resume, quiet):  # fmt: skip
    """Transcribe every score in SOURCE into OUTDIR, mirroring SOURCE's folders.

    SOURCE is a folder (searched recursively for images and PDFs), a .zip or .tar archive
    (read safely: at most 10,000 files and 4 GiB, no member may leave OUTDIR, links are
    skipped), or a text file listing one input path per line. OUTDIR/manifest.jsonl records
    each input's status, pages, systems, timings, problems, confidence and outputs
    (manifest.csv is the same as a table). Stop it any time: a rerun resumes where it stopped.
    The batch owns the outputs it names in OUTDIR and rewrites them when it redoes an input.
    Exit code 3 when some inputs failed (the others are written).

    \b
    Examples:
      omrgemma batch scans/ -o out/
      omrgemma batch scores.zip -o out/ --to krn,mxl --workers 4
      omrgemma batch list.txt -o out/ --no-resume
    """
    from rich.console import Console

    from omrgemma.pipeline.batch import BatchOptions, run_batch
    from omrgemma.pipeline.progress import BatchProgress, summary_table
    from omrgemma.pipeline.transcribe import TranscribeOptions

    console = Console(stderr=True, quiet=quiet)
    options = BatchOptions(
        transcribe=TranscribeOptions(formats=parse_output_formats(formats), force=force,
                                     pages=pages, dpi=dpi, preview=preview),
        workers=workers, resume=resume,
    )  # fmt: skip
    began = time.perf_counter()
    with console.status("loading the model"):
        recognizer = load(model_dir, resolution, beam, quantize, device, batch_size)
    console.print(f"model {recognizer.model_dir} on {recognizer.device} "
                  f"({time.perf_counter() - began:.1f} s to load)")  # fmt: skip
    with BatchProgress(console) as progress:
        summary = run_batch(source, out_dir, recognizer, options, on_event=progress.event)
    console.print(summary_table(summary))
    if summary.failed:
        raise PartialFailure(
            f"{summary.failed} of {summary.inputs} inputs failed",
            hint=f"see {out_dir / 'manifest.jsonl'}",
        )

"""`omrgemma transcribe`: score images or PDFs in, one **kern (and MusicXML, MIDI, ...) per score out."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from omrgemma.errors import OmrError, PartialFailure
from omrgemma.pipeline.cli_options import load, model_options, output_options, parse_output_formats


@click.command("transcribe")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=None, help="Output folder (default: next to each input).")  # fmt: skip
@output_options
@model_options
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
@click.option("-q", "--quiet", is_flag=True, help="No progress or summary on stderr.")
@click.option(
    "-v", "--verbose", is_flag=True, help="Also list every problem and low-confidence measure."
)
def command(inputs, out_dir, formats, force, pages, dpi, preview, model_dir, resolution, beam,
            quantize, device, batch_size, as_json, quiet, verbose):  # fmt: skip
    """Transcribe score images or PDFs into **kern, MusicXML, MIDI, MEI or SVG.

    Each INPUT (PNG, JPEG, TIFF, PDF; multi-page files are one score) becomes one score named
    after it: score.pdf -> score.krn, score.musicxml, score.mid. Low-confidence measures and
    problems the repair could not fix are marked in the .krn as `!!omrgemma:` comments and
    listed on stderr. Existing outputs are kept unless --force.

    \b
    Examples:
      omrgemma transcribe page.png -o out/
      omrgemma transcribe score.pdf --pages 1-3 --to krn,mxl,mei -o out/
      omrgemma transcribe scan.tif --model models/my-model --beam 4 --json
    """
    from rich.console import Console

    from omrgemma.pipeline.transcribe import TranscribeOptions, transcribe_file

    console = Console(stderr=True, quiet=quiet)
    options = TranscribeOptions(formats=parse_output_formats(formats), force=force, pages=pages,
                                dpi=dpi, preview=preview)  # fmt: skip
    began = time.perf_counter()
    with console.status("loading the model"):
        recognizer = load(model_dir, resolution, beam, quantize, device, batch_size)
    console.print(f"model {recognizer.model_dir} on {recognizer.device} "
                  f"({time.perf_counter() - began:.1f} s to load)")  # fmt: skip
    reports, failures = [], []
    for path in inputs:
        target = out_dir if out_dir is not None else path.parent
        try:
            with console.status(f"transcribing {path.name}"):
                report = transcribe_file(path, recognizer, target, options)
        except OmrError as exc:
            if len(inputs) == 1:
                raise
            failures.append((str(path), exc.format()))
            console.print(f"[red]failed[/red] {exc.format()}")
            continue
        reports.append(report)
        _describe(console, report, verbose)
    if as_json:
        summary = {"scores": [r.to_dict() for r in reports],
                   "failed": [{"input": i, "error": e} for i, e in failures]}  # fmt: skip
        json.dump(summary, sys.stdout, indent=1)
        sys.stdout.write("\n")
    if failures:
        raise PartialFailure(f"{len(failures)} of {len(inputs)} inputs failed")


def _describe(console, report, verbose: bool) -> None:
    seconds = report.seconds.get("total", 0.0)
    console.print(
        f"[green]done[/green] {report.input}: {report.pages} page(s), {report.systems} system(s) "
        f"in {seconds:.1f} s"
        + (f", confidence {report.mean_confidence:.2f}" if report.mean_confidence else "")
    )
    for note in report.page_notes:
        console.print(f"  page {note['page']}: {note['note']}")
    low, problems = report.low_confidence, report.problems
    if low:
        where = ", ".join(f"{m['system']}:{m['measure']}" for m in low[: None if verbose else 8])
        more = "" if verbose or len(low) <= 8 else f" and {len(low) - 8} more"
        console.print(f"  {len(low)} low-confidence measure(s) (system:measure) {where}{more}")
    if problems:
        console.print(f"  {len(problems)} problem(s) the repair could not fix"
                      + ("" if verbose else " (-v lists them)"))  # fmt: skip
        if verbose:
            for p in problems:
                where = f"system {p['system']}" if p["system"] else "score"
                where += f" measure {p['measure']}" if p.get("measure") else ""
                console.print(f"    {where}: {p['message']}")
    for output in report.outputs:
        console.print(f"  wrote {output}")

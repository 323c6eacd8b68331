"""`omrgemma evaluate`: CER/SER/LER, note F1 and valid output share of a model on a test set."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

SETS = (  # testsets.SET_NAMES
    "grandstaff-like", "camera-like", "real-scans", "single-staff", "real-scans-dev",
    "grandstaff-like-dev", "camera-like-dev", "single-staff-dev",
)  # fmt: skip


@click.command("evaluate")
@click.option(
    "--model", "model", required=True, help="Model folder, baseline:empty or baseline:common."
)
@click.option(
    "--set", "set_name", type=click.Choice(SETS), default="grandstaff-like", show_default=True
)
@click.option(
    "--limit", type=click.IntRange(min=1), default=None, help="Score only the first N systems."
)
@click.option("--data", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Corpora folder with kern/piano/COLLECTION/*.krn and scans/COLLECTION/*.pdf "
                   "(single-staff: kern/mono/..., kern/polish-scores/1-staff, ...).")  # fmt: skip
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Seed for cutting and augmentation."
)
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the full report (overall and per collection) as JSON.")  # fmt: skip
@click.option("--examples", "examples_dir", type=click.Path(file_okay=False, path_type=Path),
              default=None, help="Save the worst cases: image, reference, prediction, diff.")  # fmt: skip
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--beam", type=click.IntRange(1, 16), default=None,
              help="Beam width for a model folder (1: greedy). Default: the model's, as "
                   "`transcribe` reads it.")  # fmt: skip
@click.option("--no-music", is_flag=True, help="Skip note F1 and MusicXML checks (much faster).")
def command(
    model, set_name, limit, data, seed, json_path, examples_dir, batch_size, beam, no_music
):
    """Measure a model on a test set built from the corpora (held-out movements only), or
    compare models and settings on a -dev set (the same from training movements: choose there,
    not on a test set).

    Prints a table of CER/SER/LER (SMT's definitions, %), note precision/recall/F1, the share of
    predictions that validate and that convert to MusicXML, overall and per collection.
    A model that reads one staff reads each system staff by staff (the staves' kern joined).

    \b
    Examples:
      omrgemma evaluate --model baseline:empty --set grandstaff-like --limit 200
      omrgemma evaluate --model models/omr-small --set real-scans --json report.json
      omrgemma evaluate --model baseline:common --examples worst/
      omrgemma evaluate --model models/omr-staff --set single-staff --beam 4
    """
    from rich.console import Console
    from rich.progress import Progress

    from omrgemma.data import testsets
    from omrgemma.errors import UsageError
    from omrgemma.evaluate import evaluate, load_predictor, write_examples
    from omrgemma.io import write_atomic
    from omrgemma.settings import data_dir

    data = data or data_dir()
    source = testsets.source_folder(set_name, data)
    if not source.is_dir():
        folder = source.relative_to(data).as_posix()
        raise UsageError(
            f"no {folder} folder",
            path=data,
            hint=f"pass --data DIR holding {folder}/COLLECTION/*.krn",
        )
    err = Console(stderr=True)
    predictor = load_predictor(model, data=data, set_name=set_name, beam=beam)
    build_report = testsets.BuildReport()
    examples = testsets.build(set_name, data, seed=seed, limit=limit, report=build_report)
    with Progress(console=err, transient=True) as progress:
        task = progress.add_task(f"{set_name}", total=limit)
        report = evaluate(
            predictor,
            examples,
            set_name=set_name,
            model=model if beam is None else f"{model} (beam {beam})",
            batch_size=batch_size,
            music=not no_music,
            progress=lambda n: progress.update(task, completed=n),
        )
    if report.overall.examples == 0:
        raise UsageError(
            f"the {set_name} set is empty", path=data, hint="check --data and the scans"
        )
    Console(width=None if sys.stdout.isatty() else 130).print(table(report))
    for movement, reason in build_report.skipped:
        err.print(f"skipped {movement}: {reason}")
    if build_report.render_failures or build_report.cut_failures:
        err.print(f"left out: {len(build_report.cut_failures)} movements the cutter rejected, "
                  f"{len(build_report.render_failures)} systems verovio could not engrave")  # fmt: skip
    if json_path is not None:
        document = report.to_dict() | {
            "skipped": [{"movement": m, "reason": r} for m, r in build_report.skipped],
            "render_failures": build_report.render_failures,
            "cut_failures": build_report.cut_failures,
        }
        write_atomic(json_path, json.dumps(document, indent=1) + "\n")
        err.print(f"wrote {json_path}")
    if examples_dir is not None:
        written = write_examples(report, examples_dir)
        err.print(f"wrote {len(written) // 4} worst cases to {examples_dir}")


def table(report):
    from rich.table import Table

    music = report.overall.music_scored > 0
    grid = Table(title=f"{report.model} on {report.set_name}")
    for name in ("collection", "systems", "CER %", "SER %", "LER %", "valid %"):
        grid.add_column(name, justify="left" if name == "collection" else "right")
    if music:
        grid.add_column("note F1", justify="right")
        grid.add_column("converts %", justify="right")
    rows = sorted(report.by_collection.items()) + [("all", report.overall)]
    for name, totals in rows:
        row = totals.to_dict()
        cells = [name, str(row["examples"]), f"{row['cer']:.2f}", f"{row['ser']:.2f}",
                 f"{row['ler']:.2f}", f"{row['valid_percent']:.1f}"]  # fmt: skip
        if music:
            cells += [f"{row['note_f1']:.3f}", f"{row['converts_percent']:.1f}"]
        grid.add_row(*cells, end_section=name == rows[-2][0] if len(rows) > 1 else False)
    return grid

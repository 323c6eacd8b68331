"""`omrgemma validate`: list the problems of **kern files, optionally repair them. No JAX."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from omrgemma.errors import EXIT_FAILURE, UsageError


@click.command("validate")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the problems as JSON on stdout.")
@click.option("--repair", is_flag=True, help="Write a repaired copy (needs -o).")
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None,
              help="With --repair: the repaired file (one input) or a folder (several).")  # fmt: skip
@click.option("-f", "--force", is_flag=True, help="Overwrite an existing repaired file.")
@click.option("-w", "--warnings/--no-warnings", "show_warnings", default=True, show_default=True,
              help="List warnings as well as errors.")  # fmt: skip
def command(inputs, as_json, repair, output, force, show_warnings):  # fmt: skip
    """Check **kern files: field counts, tokens, spine manipulators, measure durations, ties.

    Exit code 0 when no file has errors (warnings are allowed), 1 otherwise. With --repair, the
    repaired text is checked instead, and the fixes made are listed.

    \b
    Examples:
      omrgemma validate piece.krn
      omrgemma validate --json scores/*.krn
      omrgemma validate --repair piece.krn -o piece-fixed.krn
    """
    from omrgemma.io import check_writable, write_atomic
    from omrgemma.kern.files import read_kern
    from omrgemma.kern.repair import repair as repair_text
    from omrgemma.kern.validate import has_errors, validate

    if repair and output is None:
        raise UsageError("--repair needs -o/--output", hint="e.g. -o fixed.krn")
    if output is not None and not repair:
        raise UsageError("-o/--output is only used with --repair")
    reports = []
    for path in inputs:
        text = read_kern(path)
        fixes = []
        if repair:
            text, fixes = repair_text(text)
            target = output / path.name if len(inputs) > 1 or output.is_dir() else output
            check_writable(target, force=force)
        problems = validate(text, str(path))
        if repair:
            write_atomic(target, text, force=force)
        reports.append({"path": str(path), "problems": problems, "fixes": fixes,
                        "repaired": str(target) if repair else None})  # fmt: skip
    if as_json:
        json.dump([_to_json(r, show_warnings) for r in reports], sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        _print(reports, show_warnings)
    return EXIT_FAILURE if any(has_errors(r["problems"]) for r in reports) else 0


def _to_json(report: dict, show_warnings: bool) -> dict:
    problems = [p for p in report["problems"] if show_warnings or p.severity == "error"]
    return {
        "path": report["path"],
        "errors": sum(p.severity == "error" for p in report["problems"]),
        "warnings": sum(p.severity == "warning" for p in report["problems"]),
        "problems": [p.to_dict() for p in problems],
        "fixes": [f.to_dict() for f in report["fixes"]],
        "repaired": report["repaired"],
    }


def _print(reports: list[dict], show_warnings: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    out, err = Console(), Console(stderr=True)
    for report in reports:
        problems = [p for p in report["problems"] if show_warnings or p.severity == "error"]
        if report["fixes"]:
            fixes = Table("line", "fix", "what was done", title=f"{report['path']}: fixes")
            for fix in report["fixes"]:
                fixes.add_row(str(fix.line), fix.code, fix.description)
            out.print(fixes)
            err.print(f"wrote {report['repaired']}")
        if problems:
            table = Table("line", "severity", "code", "message", title=report["path"])
            for p in problems:
                style = "red" if p.severity == "error" else "yellow"
                table.add_row(str(p.line), f"[{style}]{p.severity}[/{style}]", p.code, p.message)
            out.print(table)
        errors = sum(p.severity == "error" for p in report["problems"])
        warnings = len(report["problems"]) - errors
        err.print(f"{report['path']}: {errors} error(s), {warnings} warning(s)")

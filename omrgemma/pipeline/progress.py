"""The batch's progress display and summary table (rich, on stderr)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table


class BatchProgress:
    """A live bar over inputs, with pages, systems and failures; fed by `run_batch` events."""

    def __init__(self, console: Console):
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[pages]} pages, {task.fields[systems]} systems"),
            TextColumn("[red]{task.fields[failed]} failed"),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self.task = self.progress.add_task("inputs", total=None, pages=0, systems=0, failed=0)
        self.console = console

    def __enter__(self) -> BatchProgress:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.__exit__(*exc)

    def event(self, kind: str, data: dict[str, Any]) -> None:
        task = self.progress.tasks[0]
        if kind == "start":
            self.progress.update(self.task, total=data["todo"])
            if data["skipped"]:
                self.console.print(f"resuming: {data['skipped']} input(s) already done")
        elif kind == "finished":
            record = data["record"]
            failed = task.fields["failed"] + (record["status"] != "ok")
            self.progress.update(
                self.task,
                advance=1,
                pages=task.fields["pages"] + record["pages"],
                systems=task.fields["systems"] + record["systems"],
                failed=failed,
            )
            if record["status"] != "ok":
                self.console.print(f"[red]failed[/red] {record['input']}: {record['error']}")


def summary_table(summary) -> Table:
    table = Table(title="batch summary", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_row("inputs", str(summary.inputs))
    table.add_row("transcribed", str(summary.done))
    table.add_row("skipped (done before)", str(summary.skipped))
    table.add_row("failed", str(summary.failed))
    table.add_row("pages", str(summary.pages))
    table.add_row("systems", str(summary.systems))
    table.add_row("time", f"{summary.seconds:.1f} s")
    table.add_row("pages per minute", f"{summary.pages_per_minute:.1f}")
    return table

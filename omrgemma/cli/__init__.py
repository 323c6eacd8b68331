"""The `omrgemma` command line: a thin layer that maps library errors to exit codes.

Each command lives in its own module `omrgemma/cli/<name>.py` exposing `command`, imported only
when that command runs, so `omrgemma --help`, `convert` and `validate` never import JAX.

Exit codes: 0 success, 1 failure, 2 usage error, 3 a batch where some inputs failed.
"""

from __future__ import annotations

import importlib
import sys

import click

from omrgemma import __version__
from omrgemma.errors import EXIT_FAILURE, EXIT_USAGE, OmrError

# name -> one-line summary (shown by --help without importing the command's module)
COMMANDS: dict[str, str] = {
    "transcribe": "Read score images or PDFs and write **kern, MusicXML, MIDI, MEI, SVG.",
    "batch": "Transcribe a folder, archive or list of scores, resumably, with a manifest.",
    "preview": "Write an HTML page showing the original beside the engraved transcription.",
    "convert": "Convert **kern to MusicXML, MXL, MIDI, MEI, SVG or PNG.",
    "validate": "Check **kern files for problems, and optionally repair them.",
    "evaluate": "Measure a model's CER/SER/LER and note F1 on a test set.",
    "train": "Train or fine-tune a model.",
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module = importlib.import_module(f"omrgemma.cli.{name}")
        return module.command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl(list(COMMANDS.items()))


CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(cls=LazyGroup, context_settings=CONTEXT)
@click.version_option(__version__, "-V", "--version", prog_name="omrgemma")
@click.option("--debug", is_flag=True, help="Show tracebacks for expected errors too.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Optical music recognition with PaliGemma 2.

    \b
    Examples:
      omrgemma transcribe score.pdf -o out/
      omrgemma convert piece.krn --to musicxml,midi,svg -o out/
      omrgemma validate --repair piece.krn -o fixed.krn
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI and turn every expected failure into one line and an exit code."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    try:
        result = cli.main(args=args, prog_name="omrgemma", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(EXIT_FAILURE)
    except click.ClickException as exc:
        exc.show()
        sys.exit(EXIT_USAGE if isinstance(exc, click.UsageError) else exc.exit_code)
    except OmrError as exc:
        if debug:
            raise
        click.echo(f"error: {exc.format()}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    sys.exit(result if isinstance(result, int) else 0)

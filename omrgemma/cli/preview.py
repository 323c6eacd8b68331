"""`omrgemma preview`: an HTML page per transcription, the original beside the engraving."""

from __future__ import annotations

from pathlib import Path

import click

from omrgemma.errors import InputError


@click.command("preview")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--force", is_flag=True, help="Rewrite previews that exist.")
def command(paths, force):
    """Write NAME.preview.html for transcriptions (or index.html for a batch folder).

    Each PATH is a transcription (NAME.krn or NAME.omrgemma.json, written by transcribe) or a
    batch output folder, which gets a preview per score plus index.html. The pages are self-
    contained: images are embedded and nothing is loaded from the network. Paths written are
    printed on stdout.

    \b
    Examples:
      omrgemma preview out/score.krn
      omrgemma preview out/            # a batch output folder: out/index.html
    """
    from omrgemma.pipeline.preview import write_index, write_preview

    for path in paths:
        if path.is_dir():
            click.echo(write_index(path, force=force))
            continue
        sidecar = (
            path if path.name.endswith(".omrgemma.json") else path.with_suffix(".omrgemma.json")
        )
        if not sidecar.is_file():
            raise InputError("no transcription sidecar found", path=sidecar,
                             hint="transcribe writes NAME.omrgemma.json next to NAME.krn")  # fmt: skip
        click.echo(write_preview(sidecar, force=True if force else False))

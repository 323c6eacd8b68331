"""`omrgemma convert`: **kern files to MusicXML, MXL, MIDI, MEI, SVG or PNG. Never imports JAX."""

from __future__ import annotations

from pathlib import Path

import click

from omrgemma.errors import OmrError, PartialFailure


@click.command("convert")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-t", "--to", "formats", default="musicxml", show_default=True,
              help="Comma-separated formats: musicxml, mxl, midi, mei, svg, png.")  # fmt: skip
@click.option("-o", "--output", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=None, help="Output folder (default: next to each input).")  # fmt: skip
@click.option("-f", "--force", is_flag=True, help="Overwrite existing outputs.")
@click.option("--timeout", default=60.0, show_default=True, help="Seconds allowed for engraving.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing but errors.")
def command(inputs, formats, out_dir, force, timeout, quiet):  # fmt: skip
    """Convert **kern files to MusicXML, MXL, MIDI, MEI, SVG or PNG.

    Outputs are named after each INPUT: piece.krn -> piece.musicxml, piece.mid, piece.svg. A
    score engraved on several pages gives piece_p001.svg, piece_p002.svg, ... (the same for PNG).
    Existing outputs are kept unless --force; when any format fails, none is written.

    \b
    Examples:
      omrgemma convert piece.krn -o out/
      omrgemma convert piece.krn --to musicxml,midi,svg,png -o out/
      omrgemma convert *.krn --to mxl,mei -o out/ --force
    """
    from omrgemma.kern.convert import parse_formats, write_outputs
    from omrgemma.kern.files import read_kern

    wanted = parse_formats(formats)
    failures: list[str] = []
    for path in inputs:
        try:
            text = read_kern(path)
            target = out_dir if out_dir is not None else path.parent
            written = write_outputs(text, path.stem, target, wanted, force=force, path=path,
                                    timeout=timeout)  # fmt: skip
        except OmrError as exc:
            if len(inputs) == 1:
                raise
            failures.append(exc.format())
            click.echo(f"error: {exc.format()}", err=True)
            continue
        if not quiet:
            for paths in written.values():
                for out in paths:
                    click.echo(f"wrote {out}", err=True)
    if failures:
        raise PartialFailure(f"{len(failures)} of {len(inputs)} inputs failed")

"""Options shared by `transcribe` and `batch`: the model, decoding and output formats."""

from __future__ import annotations

import click

from omrgemma.errors import UsageError
from omrgemma.settings import models_dir

DEFAULT_MODEL = "omrgemma-small"


def default_model() -> str:
    return str(models_dir() / DEFAULT_MODEL)


def model_options(func):
    """--model, --resolution, --beam, --quantize, --device, --batch-size."""
    for option in reversed([
        click.option("--model", "model_dir", metavar="DIR", default=None,
                     help="Model directory (ours, an official PaliGemma 2 transformers folder or a "
                          "big_vision .npz). Default: the shipped models/omrgemma-small."),
        click.option("--resolution", type=click.Choice(["224", "448", "896"]), default=None,
                     help="Input resolution, where the model has several."),
        click.option("--beam", type=click.IntRange(1, 16), default=None,
                     help="Beam width (1 = greedy). Default: the model's (its inference.json), "
                          "else greedy."),
        click.option("--quantize", type=click.Choice(["int8"]), default=None,
                     help="Quantize the weights to int8 (less memory, a little less accuracy)."),
        click.option("--device", type=click.Choice(["auto", "cpu", "gpu", "tpu"]), default="auto",
                     show_default=True, help="Where the model runs."),
        click.option("--batch-size", type=click.IntRange(1, 512), default=8, show_default=True,
                     help="Systems decoded together."),
    ]):  # fmt: skip
        func = option(func)
    return func


def output_options(func):
    """--to, --force, --pages, --dpi, --preview."""
    for option in reversed([
        click.option("--to", "formats", default="krn,musicxml,mid", show_default=True,
                     help="Comma-separated outputs: krn, musicxml, mxl, mid, mei, svg, png."),
        click.option("--force", is_flag=True, help="Overwrite existing outputs."),
        click.option("--pages", default=None, metavar="RANGE",
                     help='Pages of PDFs/TIFFs to read, 1-based: "1-3,5".'),
        click.option("--dpi", type=click.IntRange(72, 1200), default=300, show_default=True,
                     help="Resolution PDFs are rasterised at."),
        click.option("--preview", is_flag=True,
                     help="Also write NAME.preview.html (original beside the engraving)."),
    ]):  # fmt: skip
        func = option(func)
    return func


def parse_output_formats(spec: str) -> tuple[str, ...]:
    """`krn,musicxml,mid` -> ("krn", "musicxml", "midi"), checked against the converters."""
    from omrgemma.kern.convert import parse_formats

    names = [n.strip().lower() for n in spec.split(",") if n.strip()]
    others = [n for n in names if n not in ("krn", "kern")]
    formats = (["krn"] if len(others) < len(names) else []) + list(
        parse_formats(others) if others else []
    )
    if not formats:
        raise UsageError("no output format given", hint="e.g. --to krn,musicxml,mid")
    return tuple(formats)


def load(model_dir, resolution, beam, quantize, device, batch_size):
    """The recognizer for the model options (imports JAX)."""
    from omrgemma.recognizer import load_recognizer

    return load_recognizer(
        model_dir or default_model(),
        device=device,
        quantize=quantize,
        beam=beam,
        batch_size=batch_size,
        resolution=int(resolution) if resolution else None,
    )

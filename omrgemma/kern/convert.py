"""Kern to MusicXML, MXL, MIDI and MEI (converter21 + music21), SVG and PNG (verovio + resvg).

    score = to_score(text)                                   # music21.stream.Score
    paths = write_outputs(text, "piece", Path("out"), ["musicxml", "svg"], force=False)
    # {"musicxml": [out/piece.musicxml], "svg": [out/piece.svg]}

Every output is produced in memory first and written only when all of them succeeded and none
exists already (unless `force`), each through `omrgemma.io.write_atomic`: a failed conversion
leaves nothing half-written. Multi-page engravings are written as `STEM_p001.svg`, `STEM_p002.svg`,
... (the same for PNG); a one-page score is plain `STEM.svg`.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Literal, get_args

from omrgemma.errors import ConversionError, KernError, UsageError
from omrgemma.io import check_writable, write_atomic
from omrgemma.kern import compat
from omrgemma.kern.render import render_svg_pages, svg_to_png

if TYPE_CHECKING:
    from music21.stream import Score

Format = Literal["musicxml", "mxl", "midi", "mei", "svg", "png"]
FORMATS: tuple[Format, ...] = get_args(Format)
SUFFIX: dict[Format, str] = {
    "musicxml": ".musicxml",
    "mxl": ".mxl",
    "midi": ".mid",
    "mei": ".mei",
    "svg": ".svg",
    "png": ".png",
}
_HINT = "run `omrgemma validate` on it to find the problem"


def parse_formats(spec: str | Iterable[str]) -> list[Format]:
    """`"musicxml,midi"` (or a list) into known formats, in order, without duplicates."""
    names = spec.split(",") if isinstance(spec, str) else list(spec)
    result: list[Format] = []
    for name in (n.strip().lower() for n in names):
        name = {"xml": "musicxml", "mid": "midi"}.get(name, name)
        if name not in FORMATS:
            raise UsageError(f"unknown format {name!r}", hint=f"choose from {', '.join(FORMATS)}")
        if name not in result:
            result.append(name)  # type: ignore[arg-type]
    if not result:
        raise UsageError("no output format given", hint=f"choose from {', '.join(FORMATS)}")
    return result


def to_score(text: str, *, path: str | Path | None = None) -> Score:
    """Parse kern text with converter21 into a music21 `Score` (raises `KernError`)."""
    compat.register()
    from music21 import converter

    try:
        score = converter.parse(text, format="humdrum", forceSource=True)
    except Exception as exc:  # converter21 raises anything from ValueError to IndexError
        raise KernError(
            f"converter21 could not read it ({type(exc).__name__}: {exc})", path=path, hint=_HINT
        ) from exc
    from music21.stream import Opus

    if isinstance(score, Opus):  # several `**kern` segments: one score only if there is one
        if len(score.scores) != 1:
            raise KernError(
                f"holds {len(score.scores)} separate pieces", path=path, hint="split the file"
            )
        score = score.scores[0]
    if not score.parts or not score.recurse().notesAndRests:
        raise KernError("holds no music", path=path, hint=_HINT)
    return score


def score_to_musicxml(score: Score) -> bytes:
    from music21.musicxml.m21ToXml import GeneralObjectExporter

    return GeneralObjectExporter(score).parse()


def score_to_midi(score: Score) -> bytes:
    from music21.midi.translate import music21ObjectToMidiFile

    return music21ObjectToMidiFile(score).writestr()


def _write_with_music21(score: Score, fmt: str, suffix: str) -> bytes:
    """Formats music21 only writes to files (MXL's zip, converter21's MEI): via a temp folder."""
    with tempfile.TemporaryDirectory(prefix="omrgemma-") as folder:
        written = Path(score.write(fmt, fp=Path(folder) / f"score{suffix}"))
        return written.read_bytes()


def score_to_mxl(score: Score) -> bytes:
    return _write_with_music21(score, "mxl", ".mxl")


def score_to_mei(score: Score) -> bytes:
    compat.register()
    return _write_with_music21(score, "mei", ".mei")


def convert(
    text: str,
    formats: Iterable[Format],
    *,
    path: str | Path | None = None,
    svg_options: dict | None = None,
    timeout: float = 60,
) -> dict[Format, list[bytes]]:
    """Produce every requested format in memory: one payload each, one per page for SVG/PNG."""
    formats = list(formats)
    result: dict[Format, list[bytes]] = {}
    if any(f in ("musicxml", "mxl", "midi", "mei") for f in formats):
        score = to_score(text, path=path)
    writers = {
        "musicxml": score_to_musicxml,
        "mxl": score_to_mxl,
        "midi": score_to_midi,
        "mei": score_to_mei,
    }
    pages: list[str] = []
    if "svg" in formats or "png" in formats:
        pages = render_svg_pages(text, options=svg_options, timeout=timeout, path=path)
    for fmt in formats:
        try:
            if fmt in writers:
                result[fmt] = [writers[fmt](score)]
            elif fmt == "svg":
                result[fmt] = [page.encode("utf-8") for page in pages]
            else:
                result[fmt] = [svg_to_png(page) for page in pages]
        except ConversionError as exc:
            exc.path = exc.path or (None if path is None else str(path))
            raise
        except Exception as exc:
            raise ConversionError(
                f"writing {fmt} failed ({type(exc).__name__}: {exc})", path=path, hint=_HINT
            ) from exc
    return result


def output_paths(stem: str, out_dir: Path, fmt: Format, count: int) -> list[Path]:
    """`out/STEM.svg` for one page, `out/STEM_p001.svg`, ... for several."""
    suffix = SUFFIX[fmt]
    if count == 1:
        return [out_dir / f"{stem}{suffix}"]
    return [out_dir / f"{stem}_p{i:03d}{suffix}" for i in range(1, count + 1)]


def write_outputs(
    text: str,
    stem: str,
    out_dir: str | Path,
    formats: Iterable[Format],
    *,
    force: bool = False,
    path: str | Path | None = None,
    svg_options: dict | None = None,
    timeout: float = 60,
) -> dict[Format, list[Path]]:
    """Convert and write every format to `out_dir/STEM.*`; nothing is written if any step fails.

    Raises `OutputExistsError` (before writing anything) when an output exists and not `force`.
    """
    out_dir = Path(out_dir)
    payloads = convert(text, formats, path=path, svg_options=svg_options, timeout=timeout)
    targets = {fmt: output_paths(stem, out_dir, fmt, len(data)) for fmt, data in payloads.items()}
    for paths in targets.values():
        for target in paths:
            check_writable(target, force=force)
    for fmt, paths in targets.items():
        for target, data in zip(paths, payloads[fmt], strict=True):
            write_atomic(target, data, force=force)
    return targets

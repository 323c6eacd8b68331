"""Kern to SVG pages (verovio, in a subprocess with a timeout) and SVG to PNG (resvg).

Engravers can hang or crash on malformed input, so verovio never runs in our process: a small
worker script (`render_worker.py`) is started with `sys.executable` and killed after `timeout`
seconds. PNGs come from those SVGs through resvg, which needs a text font for titles, tempo words
and lyrics (the music itself is drawn as SMuFL paths).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from omrgemma.errors import ConversionError

# A4 pages (tenths of a millimetre) at 40 %: 840 x 1188 px SVGs; no verovio footer line.
DEFAULT_SVG_OPTIONS: Mapping[str, Any] = {
    "inputFrom": "humdrum",
    "pageWidth": 2100,
    "pageHeight": 2970,
    "scale": 40,
    "footer": "none",
    "adjustPageHeight": True,
}
PNG_ZOOM = 2.5  # 840 px SVG width -> 2100 px PNG, about 250 dpi for an A4 page
TEXT_FONT = "DejaVu Serif"
_FONT_DIRS = ("/usr/share/fonts", "/usr/local/share/fonts", "/Library/Fonts", "C:/Windows/Fonts")
_WORKER = Path(__file__).with_name("render_worker.py")


def render_svg_pages(
    text: str,
    *,
    options: Mapping[str, Any] | None = None,
    timeout: float = 60,
    path: str | Path | None = None,
) -> list[str]:
    """Engrave kern `text` into SVG strings, one per page.

    `options` are verovio options merged over `DEFAULT_SVG_OPTIONS`. Raises `ConversionError`
    (naming `path`) when verovio fails, crashes or runs longer than `timeout` seconds.
    """
    request = json.dumps({"kern": text, "options": {**DEFAULT_SVG_OPTIONS, **(options or {})}})
    try:
        done = subprocess.run(
            [sys.executable, str(_WORKER)],
            input=request,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as exc:
        raise ConversionError(
            f"verovio did not finish within {timeout:g} s",
            path=path,
            hint="run `omrgemma validate` on it; malformed kern can hang the engraver",
        ) from exc
    if done.returncode != 0:
        detail = done.stderr.strip().splitlines()[-1:] or [f"exit code {done.returncode}"]
        raise ConversionError(
            f"verovio could not engrave it ({detail[0]})",
            path=path,
            hint="run `omrgemma validate` on it to find the problem",
        )
    pages = json.loads(done.stdout)["pages"]
    if not pages:
        raise ConversionError("verovio produced no pages", path=path)
    return pages


@lru_cache(maxsize=1)
def text_font() -> tuple[str | None, list[str]]:
    """(font family, font files) for resvg: DejaVu Serif when installed, else any font found.

    resvg draws no text at all when the family it is given does not exist, so when DejaVu Serif
    is missing we hand it the first TrueType/OpenType file we can find and let its default family
    fall back to it (the text then uses whatever face that is).
    """
    found: list[Path] = []
    for folder in map(Path, _FONT_DIRS):
        if folder.is_dir():
            found += sorted(folder.rglob("*.[to]tf"))
    if any(p.name.startswith("DejaVuSerif") for p in found):
        return TEXT_FONT, []
    return None, [str(p) for p in found[:1]]


def svg_to_png(svg: str, *, zoom: float = PNG_ZOOM) -> bytes:
    """Rasterise one SVG page to PNG bytes on a white background."""
    import resvg_py

    family, files = text_font()
    try:
        return bytes(
            resvg_py.svg_to_bytes(
                svg_string=svg,
                background="#ffffff",
                zoom=zoom,
                font_family=family,
                serif_family=family,
                font_files=files or None,
            )
        )
    except ValueError as exc:
        raise ConversionError(f"resvg could not rasterise the SVG ({exc})") from exc

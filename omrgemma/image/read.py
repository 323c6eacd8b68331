"""Read any score image or PDF into greyscale pages, one page in memory at a time.

Supported: PNG, JPEG (EXIF orientation applied), TIFF (multi-page, 1-bit CCITT), BMP, WebP, GIF
(every frame) and PDF (every page rasterised by pypdfium2 at `dpi`). Every page comes out as
`uint8[H, W]` greyscale, 0 black .. 255 white, with alpha composited on white and 16-bit samples
scaled down to 8 bits.

Bad input raises `ImageError` (with `path=` and `hint=`) before any large decode: the pixel count
is checked from the header (`MAX_PIXELS`), so a huge or hostile file cannot exhaust memory.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from omrgemma.errors import ImageError, UsageError

MAX_PIXELS = 150_000_000
"""Largest page accepted, in pixels (a 600-dpi A3 page is about 70 M). Below Pillow's own
decompression-bomb error (about 179 M), so this check, with its clear message, comes first."""

MIN_SIDE = 100
"""Smallest page side, in pixels, that can hold a readable staff."""

_PDF_POINTS_PER_INCH = 72.0
# pdfium's error code for a document that needs a password.
_PDFIUM_ERR_PASSWORD = 4
_PDFIUM_ERR_SUCCESS = 0


@dataclass(frozen=True, kw_only=True)
class Page:
    """One page of an input file.

    image: uint8[H, W] greyscale, 0 = black, 255 = white.
    source: the file it came from. index: 0-based page (or frame) number in that file.
    dpi: resolution when the file states it (PDFs: the dpi they were rasterised at), else None.
    """

    image: np.ndarray
    source: Path
    index: int
    dpi: float | None = None


def parse_page_range(spec: str, n_pages: int) -> list[int]:
    """Parse a 1-based page selection like "1-3,5" or "4-" into sorted, 0-based page indices.

    >>> parse_page_range("1-3,5", 6)
    [0, 1, 2, 4]

    Raises UsageError for syntax errors, empty or reversed ranges and pages beyond `n_pages`.
    """
    hint = 'use 1-based pages like "1-3,5", "4-" or "-2"'
    chosen: set[int] = set()
    for part in spec.replace(" ", "").split(","):
        if not part:
            raise UsageError(f"empty item in page range {spec!r}", hint=hint)
        first_text, dash, last_text = part.partition("-")
        try:
            first = int(first_text) if first_text else 1
            last = (int(last_text) if last_text else n_pages) if dash else first
        except ValueError:
            raise UsageError(f"bad page range {part!r} in {spec!r}", hint=hint) from None
        if first < 1 or last < first:
            raise UsageError(f"bad page range {part!r} in {spec!r}", hint=hint)
        if last > n_pages:
            raise UsageError(
                f"page {last} is out of range: the file has {n_pages} page(s)", hint=hint
            )
        chosen.update(range(first - 1, last))
    return sorted(chosen)


def count_pages(path: str | Path) -> int:
    """Number of pages (PDF) or frames (TIFF, GIF, WebP) in a file, without decoding them."""
    path = Path(path)
    if _is_pdf(path):
        document = _open_pdf(path)
        try:
            return len(document)
        finally:
            document.close()
    with _open_image(path) as image:
        return getattr(image, "n_frames", 1)


def read_pages(path: str | Path, *, pages: str | None = None, dpi: float = 300) -> Iterator[Page]:
    """Yield the pages of `path` lazily, one decoded page in memory at a time.

    pages: a 1-based selection ("1-3,5"), None for all. dpi: the rasterisation resolution for
    PDFs (images keep their own pixels; their stated dpi, if any, is reported).
    """
    path = Path(path)
    if not path.is_file():
        raise ImageError("file not found", path=path, hint="check the path")
    if _is_pdf(path):
        yield from _read_pdf(path, pages, dpi)
    else:
        yield from _read_image(path, pages)


def _is_pdf(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            return handle.read(5) == b"%PDF-"
    except OSError as error:
        raise ImageError(f"cannot read the file: {error.strerror}", path=path) from None


def _open_pdf(path: Path):
    import pypdfium2

    try:
        return pypdfium2.PdfDocument(path)
    except pypdfium2.PdfiumError as error:
        if getattr(error, "err_code", None) == _PDFIUM_ERR_PASSWORD:
            raise ImageError(
                "the PDF is encrypted", path=path, hint="save an unencrypted copy first"
            ) from None
        if getattr(error, "err_code", None) == _PDFIUM_ERR_SUCCESS:
            # PDFium refuses a document whose page tree is empty without naming an error.
            raise ImageError("the PDF has no pages", path=path) from None
        raise ImageError(
            f"not a readable PDF ({error})", path=path, hint="the file may be truncated"
        ) from None


def _read_pdf(path: Path, pages: str | None, dpi: float) -> Iterator[Page]:
    document = _open_pdf(path)
    try:
        n_pages = len(document)
        if n_pages == 0:
            raise ImageError("the PDF has no pages", path=path)
        indices = range(n_pages) if pages is None else parse_page_range(pages, n_pages)
        scale = dpi / _PDF_POINTS_PER_INCH
        for index in indices:
            page = document[index]
            try:
                width, height = page.get_size()
                _check_size(path, round(width * scale), round(height * scale), index)
                bitmap = page.render(scale=scale, grayscale=True)
                # Copy: the bitmap's buffer is freed with the page.
                image = np.array(bitmap.to_numpy(), dtype=np.uint8)
            finally:
                page.close()
            if image.ndim == 3:  # some pdfium builds return a BGR(A) buffer for grey renders
                image = np.array(Image.fromarray(image[..., :3][..., ::-1]).convert("L"))
            yield Page(image=image, source=path, index=index, dpi=float(dpi))
    finally:
        document.close()


def _open_image(path: Path) -> Image.Image:
    try:
        with warnings.catch_warnings():
            # Our own MAX_PIXELS check replaces Pillow's warning; its hard error is caught below.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path)
    except Image.DecompressionBombError as error:
        raise ImageError(
            f"the image is too large ({error})", path=path, hint="downscale it first"
        ) from None
    except UnidentifiedImageError:
        raise ImageError(
            "not an image or PDF that can be read",
            path=path,
            hint="use PNG, JPEG, TIFF, BMP, WebP, GIF or PDF",
        ) from None
    except OSError as error:
        raise ImageError(f"cannot read the image ({error})", path=path) from None
    return image


def _read_image(path: Path, pages: str | None) -> Iterator[Page]:
    with _open_image(path) as image:
        n_frames = getattr(image, "n_frames", 1)
        indices = range(n_frames) if pages is None else parse_page_range(pages, n_frames)
        for index in indices:
            try:
                image.seek(index)
                _check_size(path, image.width, image.height, index)
                gray = _to_gray(ImageOps.exif_transpose(image))
            except ImageError:
                raise
            except (OSError, ValueError, SyntaxError) as error:
                raise ImageError(
                    f"cannot decode page {index + 1} ({error})",
                    path=path,
                    hint="the file may be truncated or damaged",
                ) from None
            yield Page(image=gray, source=path, index=index, dpi=_stated_dpi(image))


def _check_size(path: Path, width: int, height: int, index: int) -> None:
    where = f"page {index + 1} " if index else ""
    if width * height > MAX_PIXELS:
        raise ImageError(
            f"{where}is too large: {width} x {height} pixels (limit {MAX_PIXELS:,})",
            path=path,
            hint="downscale it, or rasterise the PDF at a lower --dpi",
        )
    if min(width, height) < MIN_SIDE:
        raise ImageError(
            f"{where}is too small to hold music: {width} x {height} pixels",
            path=path,
            hint=f"pages need at least {MIN_SIDE} pixels a side; scan at 300 dpi",
        )


def _to_gray(image: Image.Image) -> np.ndarray:
    """Any Pillow mode to uint8[H, W]: alpha over white, 16/32-bit and float samples rescaled."""
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        samples = np.asarray(image, dtype=np.float64)
        # 16-bit scans use 0..65535; "I" may also hold plain 0..255 values.
        top = 65535.0 if samples.max(initial=0) > 255 or mode.startswith("I;16") else 255.0
        if mode == "F" and samples.max(initial=0) <= 1.0:
            top = 1.0
        return np.clip(samples * (255.0 / top) + 0.5, 0, 255).astype(np.uint8)
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(white, rgba).convert("L"))
    if mode == "L":
        return np.array(image)
    return np.asarray(image.convert("L"))


def _stated_dpi(image: Image.Image) -> float | None:
    dpi = image.info.get("dpi")
    if not dpi:
        return None
    value = float(dpi[0] if isinstance(dpi, tuple) else dpi)
    return value if value > 0 else None

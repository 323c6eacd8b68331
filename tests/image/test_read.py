"""Reading every supported format into uint8 greyscale pages, and every bad-input error."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from omrgemma.errors import ImageError, UsageError
from omrgemma.image import read
from omrgemma.image.read import count_pages, parse_page_range, read_pages


def _pattern(height: int = 160, width: int = 240) -> np.ndarray:
    """A grey ramp with a black bar: asymmetric, so rotations and flips are visible."""
    image = np.tile(np.linspace(40, 250, width).astype(np.uint8), (height, 1))
    image[10:30, 10:200] = 0
    return image


def _only_page(path, **kwargs) -> read.Page:
    pages = list(read_pages(path, **kwargs))
    assert len(pages) == 1
    return pages[0]


@pytest.mark.parametrize("suffix, fmt", [(".png", "PNG"), (".bmp", "BMP"), (".webp", "WEBP")])
def test_lossless_formats_keep_the_grey_values(tmp_path, suffix, fmt):
    path = tmp_path / f"page{suffix}"
    options = {"lossless": True} if fmt == "WEBP" else {}
    Image.fromarray(_pattern()).save(path, fmt, **options)
    page = _only_page(path)
    assert page.image.dtype == np.uint8 and page.image.shape == (160, 240)
    assert np.abs(page.image.astype(int) - _pattern()).max() <= 1
    assert page.index == 0 and page.source == path


def test_rgba_png_is_composited_on_white(tmp_path):
    rgba = np.zeros((120, 150, 4), np.uint8)
    rgba[:, :75] = (0, 0, 0, 255)  # opaque black
    rgba[:, 75:] = (0, 0, 0, 0)  # fully transparent "black"
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    image = _only_page(tmp_path / "a.png").image
    assert image[:, :75].max() == 0
    assert image[:, 75:].min() == 255


def test_16_bit_png_is_scaled_to_8_bits(tmp_path):
    samples = np.zeros((120, 120), np.uint16)
    samples[:, 40:80] = 32896  # 128 * 257
    samples[:, 80:] = 65535
    Image.fromarray(samples).save(tmp_path / "deep.png")
    image = _only_page(tmp_path / "deep.png").image
    assert image.dtype == np.uint8
    assert (image[0, 0], image[0, 60], image[0, 100]) == (0, 128, 255)


def test_jpeg_exif_orientation_is_applied(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    Image.fromarray(_pattern()).save(tmp_path / "photo.jpg", exif=exif, quality=95)
    image = _only_page(tmp_path / "photo.jpg").image
    assert image.shape == (240, 160)
    # The black bar along the top edge ends up along the right edge.
    assert image[10:200, 130:150].mean() < 40
    assert image[10:200, 10:30].mean() > 60


def test_multipage_ccitt_g4_tiff(tmp_path):
    first = Image.fromarray(np.where(_pattern() < 128, 0, 255).astype(np.uint8)).convert("1")
    second = Image.new("1", (300, 200), 1)
    path = tmp_path / "book.tif"
    first.save(path, compression="group4", save_all=True, append_images=[second], dpi=(300, 300))
    assert count_pages(path) == 2
    pages = list(read_pages(path))
    assert [p.index for p in pages] == [0, 1]
    assert pages[0].image.shape == (160, 240) and pages[1].image.shape == (200, 300)
    assert pages[0].image[20, 100] == 0 and pages[0].image[100, 230] == 255
    assert pages[1].image.min() == 255
    assert pages[0].dpi == pytest.approx(300)
    assert [p.index for p in read_pages(path, pages="2")] == [1]


def test_gif_frames_are_pages(tmp_path):
    frames = [Image.fromarray(_pattern()).convert("P"), Image.new("P", (240, 160), 0)]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:])
    assert count_pages(tmp_path / "a.gif") == 2
    assert len(list(read_pages(tmp_path / "a.gif"))) == 2


def test_two_page_pdf_is_rasterised_at_the_chosen_dpi(tmp_path):
    pages = [Image.fromarray(_pattern()), Image.new("L", (240, 160), 255)]
    path = tmp_path / "score.pdf"
    # 240 x 160 px saved at 72 dpi is a 240 x 160 pt page: 500 x 333 px at 150 dpi.
    pages[0].save(path, "PDF", save_all=True, append_images=pages[1:], resolution=72)
    assert count_pages(path) == 2
    read_back = list(read_pages(path, dpi=150))
    assert [p.index for p in read_back] == [0, 1]
    assert (
        abs(read_back[0].image.shape[0] - 333) <= 1 and abs(read_back[0].image.shape[1] - 500) <= 1
    )
    assert read_back[0].dpi == 150
    assert read_back[0].image[40, 200] < 30  # the black bar, scaled by 150/72
    assert read_back[1].image.min() > 250
    assert [p.index for p in read_pages(path, pages="2-", dpi=100)] == [1]


def test_parse_page_range():
    assert parse_page_range("1-3,5", 6) == [0, 1, 2, 4]
    assert parse_page_range("4-", 6) == [3, 4, 5]
    assert parse_page_range("-2", 6) == [0, 1]
    assert parse_page_range("2, 2,1", 3) == [0, 1]
    for bad in ["0", "3-1", "7", "a", "1,,2", "1-x"]:
        with pytest.raises(UsageError):
            parse_page_range(bad, 6)


def _pdf(objects: list[bytes], trailer_extra: bytes = b"") -> bytes:
    """A minimal PDF with a correct cross-reference table around the given objects."""
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R " % (len(objects) + 1) + trailer_extra + b">>\n")
    out.write(b"startxref\n%d\n%%%%EOF\n" % xref)
    return out.getvalue()


def test_zero_page_pdf(tmp_path):
    path = tmp_path / "empty.pdf"
    path.write_bytes(
        _pdf([b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [] /Count 0 >>"])
    )
    with pytest.raises(ImageError, match="no pages"):
        list(read_pages(path))


def test_encrypted_pdf(tmp_path):
    path = tmp_path / "locked.pdf"
    # Standard security handler with a user password that is not empty: PDFium asks for it.
    encrypt = (
        b"<< /Filter /Standard /V 1 /R 2 /P -4 /O <" + b"11" * 32 + b"> /U <" + b"22" * 32 + b"> >>"
    )
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] >>",
        encrypt,
    ]
    path.write_bytes(
        _pdf(objects, b"/Encrypt 4 0 R /ID [<" + b"33" * 16 + b"> <" + b"33" * 16 + b">] ")
    )
    with pytest.raises(ImageError, match="encrypted") as caught:
        list(read_pages(path))
    assert caught.value.path == str(path) and caught.value.hint


def test_truncated_and_garbage_files(tmp_path):
    Image.fromarray(_pattern(400, 400)).save(tmp_path / "whole.png")
    data = (tmp_path / "whole.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    (tmp_path / "junk.png").write_bytes(b"this is not an image at all" * 10)
    (tmp_path / "cut.pdf").write_bytes(b"%PDF-1.4\n1 0 obj\n<< /Type")
    for name in ["cut.png", "junk.png", "cut.pdf"]:
        with pytest.raises(ImageError) as caught:
            list(read_pages(tmp_path / name))
        assert caught.value.path == str(tmp_path / name)
    with pytest.raises(ImageError, match="not found"):
        list(read_pages(tmp_path / "missing.png"))


def test_size_limits_are_checked_before_decoding(tmp_path, monkeypatch):
    Image.fromarray(_pattern(300, 300)).save(tmp_path / "page.png")
    monkeypatch.setattr(read, "MAX_PIXELS", 300 * 299)
    with pytest.raises(ImageError, match="too large"):
        list(read_pages(tmp_path / "page.png"))
    Image.new("L", (400, 60), 255).save(tmp_path / "strip.png")
    with pytest.raises(ImageError, match="too small"):
        list(read_pages(tmp_path / "strip.png"))


def test_pdf_size_limit_uses_the_page_size(tmp_path, monkeypatch):
    Image.new("L", (200, 200), 255).save(tmp_path / "a.pdf", "PDF", resolution=72)
    monkeypatch.setattr(read, "MAX_PIXELS", 1_000_000)
    assert len(list(read_pages(tmp_path / "a.pdf", dpi=300))) == 1  # 833 x 833 px
    with pytest.raises(ImageError, match="too large"):
        list(read_pages(tmp_path / "a.pdf", dpi=600))  # 1667 x 1667 px


def test_huge_image_header_is_refused_without_decoding(tmp_path):
    """A 20000 x 20000 PNG header (400 M pixels) with no pixel data: refused from the header."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", 20000, 20000, 8, 0, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")
    (tmp_path / "bomb.png").write_bytes(png)
    with pytest.raises(ImageError, match="too large") as caught:
        list(read_pages(tmp_path / "bomb.png"))
    assert caught.value.hint

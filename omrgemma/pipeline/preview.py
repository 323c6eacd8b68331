"""Self-contained HTML previews: the original page beside the engraved transcription.

    write_preview(Path("out/score.omrgemma.json"))   # -> out/score.preview.html
    write_index(Path("out"))                         # a batch folder -> out/index.html

A page shows each input page (deskewed, as the model saw it) with its systems outlined, then
each system's crop beside verovio's engraving of its kern. Low-confidence measures are coloured
in the engraving and listed; problems the repair could not fix are listed with their measure.
Everything is embedded (images as base64, SVG inline, no scripts or fonts from the network), so
the file can be mailed or archived. What it shows comes from the `NAME.omrgemma.json` sidecar
that `transcribe` writes, plus the input file, read again for the page images.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

import numpy as np

from omrgemma.errors import ConversionError, InputError, OmrError
from omrgemma.io import write_atomic
from omrgemma.pipeline.preview_template import INDEX, PAGE

PREVIEW_SUFFIX = ".preview.html"
PAGE_WIDTH = 1100  # pixels the page image is scaled to (it is shown at most this wide)
CROP_WIDTH = 900  # and each system's crop
SYSTEM_SVG = {"breaks": "none", "adjustPageWidth": True, "adjustPageHeight": True, "scale": 35,
              "pageMarginLeft": 20, "pageMarginRight": 20, "pageMarginTop": 20,
              "pageMarginBottom": 20, "header": "none", "footer": "none"}  # fmt: skip


def preview_path(sidecar: Path) -> Path:
    return sidecar.with_name(sidecar.name.removesuffix(".omrgemma.json") + PREVIEW_SUFFIX)


def write_preview(sidecar: Path, *, force: bool = False, timeout: float = 30) -> Path:
    """Write the preview page for one transcription; returns its path."""
    try:
        data = json.loads(Path(sidecar).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"not a transcription sidecar ({exc})", path=sidecar,
                         hint="give the NAME.omrgemma.json that transcribe wrote") from None  # fmt: skip
    page = render_page(data, title=sidecar.name.removesuffix(".omrgemma.json"), timeout=timeout)
    return write_atomic(preview_path(Path(sidecar)), page, force=force)


def render_page(data: dict[str, Any], *, title: str, timeout: float = 30) -> str:
    """The HTML text of one preview."""
    images = _page_images(data)
    systems = {s["number"]: s for s in data["systems"]}
    low = {(m["system"], m["measure"]): m["p"] for m in data.get("low_confidence", [])}
    flagged = {p["system"] for p in data.get("problems", []) if p.get("system")}
    parts = []
    for page in data["pages"]:
        parts.append(_page_section(page, images.get(page["index"]), systems, flagged, low))
        for number in page["systems"]:
            crop = _crop(images.get(page["index"]), page, systems[number]["box"])
            parts.append(_system_section(systems[number], crop, low, timeout))
    general = [p for p in data.get("problems", []) if not p.get("system")]
    summary = (
        f"{len(data['pages'])} page(s), {len(systems)} system(s)"
        + (
            f", mean confidence {data['mean_confidence']:.2f}"
            if data.get("mean_confidence")
            else ""
        )
        + f", {len(low)} low-confidence measure(s), {len(data.get('problems', []))} problem(s)"
    )
    return PAGE.format(
        title=html.escape(title),
        summary=html.escape(summary),
        source=html.escape(str(data.get("input", ""))),
        notes="".join(f"<li>{html.escape(p['message'])}</li>" for p in general),
        body="\n".join(parts),
    )


def _page_images(data: dict[str, Any]) -> dict[int, np.ndarray]:
    """Each page of the input, deskewed as analysed (empty when the input is gone)."""
    import cv2

    from omrgemma.image import read_pages

    wanted = {p["index"]: p for p in data["pages"]}
    source = Path(data.get("input", ""))
    if not source.is_file():
        return {}
    spec = ",".join(str(i + 1) for i in sorted(wanted))
    images = {}
    try:
        for page in read_pages(source, pages=spec):
            info = wanted[page.index]
            height, width = page.image.shape
            transform = np.asarray(info["transform"], np.float64)
            images[page.index] = cv2.warpAffine(page.image, transform, (width, height),
                                                borderValue=255)  # fmt: skip
    except OmrError:
        return {}
    return images


def _encode(image: np.ndarray, fmt: str = ".png") -> str:
    import cv2

    ok, data = cv2.imencode(fmt, image, [cv2.IMWRITE_JPEG_QUALITY, 80] if fmt == ".jpg" else [])
    mime = "image/jpeg" if fmt == ".jpg" else "image/png"
    return f"data:{mime};base64,{base64.b64encode(data.tobytes()).decode('ascii')}"


def _page_section(page, image, systems, flagged, low) -> str:
    number = page["index"] + 1
    head = f"<h2>Page {number}</h2>"
    if page.get("note"):
        head += f'<p class="note">{html.escape(page["note"])}</p>'
    if image is None:
        return head + '<p class="note">(the input file is not available: no page image)</p>'
    import cv2

    height, width = image.shape
    scale = min(1.0, PAGE_WIDTH / width)
    small = cv2.resize(image, (round(width * scale), round(height * scale)),
                       interpolation=cv2.INTER_AREA)  # fmt: skip
    boxes = []
    for n in page["systems"]:
        x0, y0, x1, y1 = (v * scale for v in systems[n]["box"])
        kind = "bad" if n in flagged else ("low" if any(s == n for s, _ in low) else "ok")
        boxes.append(
            f'<a href="#system-{n}"><rect class="box {kind}" x="{x0:.1f}" y="{y0:.1f}" '
            f'width="{x1 - x0:.1f}" height="{y1 - y0:.1f}"/>'
            f'<text x="{x0 + 6:.1f}" y="{y0 + 18:.1f}">{n}</text></a>'
        )
    w, h = small.shape[1], small.shape[0]
    return (
        f'{head}<div class="page" style="max-width:{w}px"><svg viewBox="0 0 {w} {h}" '
        f'class="page-svg" role="img" aria-label="page {number} with systems outlined">'
        f'<image href="{_encode(small, ".jpg")}" width="{w}" height="{h}"/>'
        f"{''.join(boxes)}</svg></div>"
    )


def _crop(image, page, box) -> np.ndarray | None:
    if image is None:
        return None
    height, width = image.shape
    x0, y0, x1, y1 = (round(v) for v in box)
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(width, x1), min(height, y1)
    if x1 <= x0 or y1 <= y0:
        return None
    import cv2

    crop = image[y0:y1, x0:x1]
    scale = min(1.0, CROP_WIDTH / crop.shape[1])  # a 300-dpi system is 4000+ px wide
    size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
    return cv2.resize(crop, size, interpolation=cv2.INTER_AREA) if scale < 1 else crop


def _system_section(system, crop, low, timeout) -> str:
    from omrgemma.kern.render import render_svg_pages

    number = system["number"]
    try:
        svg = render_svg_pages(system["kern"], options=SYSTEM_SVG, timeout=timeout)[0]
        engraving = f'<div class="engraving">{_strip_xml_header(svg)}</div>'
    except ConversionError as exc:
        engraving = f'<p class="bad">could not engrave this system: {html.escape(exc.message)}</p>'
    image = f'<img class="crop" alt="system {number} as scanned" src="{_encode(crop)}"/>' if (
        crop is not None) else '<p class="note">(no image)</p>'  # fmt: skip
    lows = sorted(m for (s, m) in low if s == number)
    items = [f'<li class="low">measure {m["measure"]}: low confidence (p={m["p"]:.2f})</li>'
             for m in system["measures"] if m["measure"] in lows]  # fmt: skip
    items += [f'<li class="bad">{("measure " + str(p["measure"]) + ": ") if p.get("measure") else ""}'
              f'{html.escape(p["message"])}</li>' for p in system["problems"]]  # fmt: skip
    return (
        f'<section class="system" id="system-{number}" data-low="{",".join(map(str, lows))}">'
        f"<h3>System {number} <small>page {system['page']}, confidence "
        f"{system['confidence']:.2f}</small></h3>"
        f'<div class="pair">{image}{engraving}</div>'
        f'<ul class="issues">{"".join(items)}</ul>'
        f"<details><summary>kern</summary><pre>{html.escape(system['kern'])}</pre></details>"
        f"</section>"
    )


def _strip_xml_header(svg: str) -> str:
    start = svg.find("<svg")
    return svg[start:] if start >= 0 else svg


def find_sidecars(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.omrgemma.json") if p.is_file())


def write_index(folder: Path, *, force: bool = False, timeout: float = 30) -> Path:
    """Previews for every transcription under `folder` (a batch output) and an index page."""
    from omrgemma.pipeline.manifest import MANIFEST, Manifest

    records = Manifest(folder / MANIFEST).read()
    rows = []
    for sidecar in find_sidecars(folder):
        target = preview_path(sidecar)
        if force or not target.exists():
            write_preview(sidecar, force=True, timeout=timeout)
        data = json.loads(sidecar.read_text(encoding="utf-8"))
        link = target.relative_to(folder).as_posix()
        conf = data.get("mean_confidence")
        rows.append(
            f'<tr><td><a href="{html.escape(link)}">{html.escape(link)}</a></td>'
            f"<td>{len(data['pages'])}</td><td>{len(data['systems'])}</td>"
            f"<td>{'' if conf is None else f'{conf:.2f}'}</td>"
            f"<td>{len(data.get('low_confidence', []))}</td><td>{len(data.get('problems', []))}</td></tr>"
        )
    failed = [r for r in records.values() if r.get("status") != "ok"]
    failures = "".join(
        f"<tr><td>{html.escape(r['input'])}</td><td class=\"bad\">{html.escape(str(r.get('error')))}"
        f"</td></tr>" for r in failed
    )  # fmt: skip
    page = INDEX.format(title=html.escape(folder.name or str(folder)), rows="\n".join(rows),
                        failures=failures or '<tr><td colspan="2">none</td></tr>')  # fmt: skip
    return write_atomic(folder / "index.html", page, force=True)

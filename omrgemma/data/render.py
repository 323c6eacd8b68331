"""Engrave one kern system into a greyscale image, the way GrandStaff was made: verovio -> SVG -> PNG.

    image = render_system(snippet.kern)                  # uint8[H, W], 0 black .. 255 white
    image = render_system(kern, scale=80, font="Bravura")

verovio runs in-process with one toolkit per process, reused (creating one costs ~5 ms, loading
kern ~20 ms): `breaks: "none"` and `adjustPageWidth/Height` give one system on a page cut to its
size, with no header, footer or page numbers and small margins. resvg rasterises the SVG; it
needs a text font that exists (DejaVu Serif) or it silently drops text such as tuplet numbers.

verovio is a C++ library that can crash or hang on malformed kern. `SafeRenderer` renders in
disposable worker processes with a timeout, so one bad snippet is recorded as a failure (None)
instead of killing a whole test-set build. Kern and images cross the pipe as raw bytes (no pickle).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Literal

import cv2
import numpy as np

from omrgemma.errors import ConversionError

Font = Literal["Leipzig", "Bravura", "Gootville", "Leland", "Petaluma"]
FONTS: tuple[Font, ...] = ("Leipzig", "Bravura", "Gootville", "Leland", "Petaluma")
TEXT_FONT = "DejaVu Serif"


@dataclass(frozen=True, kw_only=True)
class RenderOptions:
    """How a system is engraved. `scale` is verovio's percentage (100: staff space ~ 22 px).

    `page_width` (verovio units, tenths of a mm) justifies the system to that width instead of
    its natural width.
    """

    scale: int = 60
    font: Font = "Leipzig"
    page_width: int | None = None
    margin: int = 40  # verovio units on every side

    def verovio(self) -> dict[str, object]:
        options: dict[str, object] = {
            "inputFrom": "humdrum",
            "breaks": "none",
            "scale": self.scale,
            "font": self.font,
            "header": "none",
            "footer": "none",
            "adjustPageHeight": True,
            "adjustPageWidth": self.page_width is None,
            "pageMarginLeft": self.margin,
            "pageMarginRight": self.margin,
            "pageMarginTop": self.margin,
            "pageMarginBottom": self.margin,
        }
        if self.page_width is not None:
            options["pageWidth"] = self.page_width
        return options


DEFAULT = RenderOptions()
_toolkit = None


def _verovio_toolkit():
    global _toolkit
    if _toolkit is None:
        import verovio

        verovio.enableLog(verovio.LOG_OFF)
        _toolkit = verovio.toolkit()
    return _toolkit


def render_svg(kern: str, options: RenderOptions = DEFAULT) -> str:
    """kern -> SVG of one system. Raises `ConversionError` when verovio rejects the kern."""
    toolkit = _verovio_toolkit()
    toolkit.setOptions(options.verovio())
    if not toolkit.loadData(kern):
        raise ConversionError("verovio could not load the kern")
    if toolkit.getPageCount() < 1:
        raise ConversionError("verovio engraved no page")
    return toolkit.renderToSVG(1)


def rasterize(svg: str) -> np.ndarray:
    """SVG -> uint8[H, W] greyscale on white."""
    import resvg_py

    png = resvg_py.svg_to_bytes(svg_string=svg, background="#ffffff", font_family=TEXT_FONT)
    image = cv2.imdecode(np.frombuffer(bytes(png), np.uint8), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise ConversionError("resvg produced no image")
    return image


def render_system(
    kern: str,
    *,
    scale: int = DEFAULT.scale,
    font: Font = DEFAULT.font,
    page_width: int | None = None,
    margin: int = DEFAULT.margin,
) -> np.ndarray:
    """Engrave one system of kern in this process: uint8[H, W] greyscale, 0 black .. 255 white."""
    options = RenderOptions(scale=scale, font=font, page_width=page_width, margin=margin)
    return rasterize(render_svg(kern, options))


# --- crash-proof rendering in worker processes --------------------------------------------------

_FRAME = struct.Struct("<I")  # length of the message that follows
_SHAPE = struct.Struct("<II")  # height, width of the image that follows; (0, 0): failure


def _read_frame(stream) -> bytes | None:
    head = stream.read(_FRAME.size)
    if len(head) < _FRAME.size:
        return None
    (length,) = _FRAME.unpack(head)
    body = stream.read(length)
    return body if len(body) == length else None


def serve() -> None:
    """Worker loop: read (options JSON NUL kern) frames on stdin, answer image frames on stdout."""
    import json
    import sys

    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    while (request := _read_frame(stdin)) is not None:
        options_json, _, kern = request.decode("utf-8").partition("\x00")
        try:
            image = render_system(kern, **json.loads(options_json))
            reply = _SHAPE.pack(*image.shape) + np.ascontiguousarray(image).tobytes()
        except Exception:  # noqa: BLE001 - any failure is reported as "no image"
            reply = _SHAPE.pack(0, 0)
        stdout.write(_FRAME.pack(len(reply)) + reply)
        stdout.flush()


class _Worker:
    """One `python -c serve()` child; killed and replaced when it crashes or hangs."""

    def __init__(self) -> None:
        import subprocess
        import sys

        self.process = subprocess.Popen(
            [sys.executable, "-c", "from omrgemma.data.render import serve; serve()"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,  # verovio warns on stderr about every odd token
        )
        self.job: int | None = None
        self.started = 0.0

    def send(self, payload: bytes) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(_FRAME.pack(len(payload)) + payload)
        self.process.stdin.flush()

    def receive(self) -> np.ndarray | None:
        """The answer to the last request; raises EOFError if the worker died."""
        reply = _read_frame(self.process.stdout)
        if reply is None:
            raise EOFError("render worker died")
        height, width = _SHAPE.unpack_from(reply)
        if height == 0:
            return None
        return np.frombuffer(reply, np.uint8, offset=_SHAPE.size).reshape(height, width).copy()

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=5)
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()


class SafeRenderer:
    """Renders untrusted kern in `workers` child processes; a crash or timeout yields None.

    Use as a context manager; `render_all` keeps every worker busy and returns results in order.
    `failures` counts the kern that gave no image.
    """

    def __init__(self, options: RenderOptions = DEFAULT, *, workers: int = 1, timeout: float = 30):
        self.options = options
        self.workers = max(1, workers)
        self.timeout = timeout
        self.pool: list[_Worker] = []
        self.failures = 0

    def __enter__(self) -> SafeRenderer:
        self.pool = [_Worker() for _ in range(self.workers)]
        return self

    def __exit__(self, *exc: object) -> None:
        for worker in self.pool:
            worker.close()
        self.pool = []

    def render_all(self, kerns: Sequence[str]) -> list[np.ndarray | None]:
        """Images for `kerns` in order; None where verovio failed, crashed or timed out."""
        import json
        import selectors
        import time

        if not self.pool:
            raise RuntimeError("use SafeRenderer as a context manager")
        options = json.dumps(asdict(self.options))
        results: list[np.ndarray | None] = [None] * len(kerns)
        pending = list(range(len(kerns)))[::-1]
        while pending or any(w.job is not None for w in self.pool):
            selector = selectors.DefaultSelector()
            for index, worker in enumerate(self.pool):
                if worker.job is None and pending:
                    worker.job = pending.pop()
                    worker.started = time.monotonic()
                    try:
                        worker.send((options + "\x00" + kerns[worker.job]).encode("utf-8"))
                    except OSError:  # died between jobs
                        self.failures += 1
                        self.pool[index] = worker = self._replaced(worker)
                        continue
                if worker.job is not None:
                    selector.register(worker.process.stdout, selectors.EVENT_READ, worker)
            ready = [key.data for key, _ in selector.select(timeout=1.0)]
            selector.close()
            for worker in ready:
                job = worker.job
                try:
                    results[job] = worker.receive()
                    worker.job = None
                except EOFError:  # verovio crashed the worker on this kern
                    self.pool[self.pool.index(worker)] = self._replaced(worker)
                if results[job] is None:
                    self.failures += 1
            now = time.monotonic()
            for index, worker in enumerate(self.pool):
                if worker.job is not None and now - worker.started > self.timeout:
                    self.failures += 1
                    self.pool[index] = self._replaced(worker)
        return results

    @staticmethod
    def _replaced(worker: _Worker) -> _Worker:
        worker.close()
        return _Worker()

    def render(self, kern: str) -> np.ndarray | None:
        return self.render_all([kern])[0]

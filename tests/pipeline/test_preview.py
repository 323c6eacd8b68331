"""Preview pages: self-contained HTML, checked in headless Chromium (skipped without it)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from omrgemma.pipeline.preview import write_index, write_preview

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "images"
SCAN = SAMPLES / "mapleleaf-p1-systems1-2.png"


def _sidecar(tmp_path: Path) -> Path:
    """A transcription of the scan sample whose two systems are the true kern, cut in two,
    with measure 2 of system 1 and a problem in system 2 flagged, as transcribe records them."""
    from omrgemma.data.snippets import cut_at_breaks
    from omrgemma.pipeline.analysis import analyze_input

    analysis = analyze_input(SCAN, target=224)
    text = (SAMPLES / "mapleleaf-p1-systems1-2.krn").read_text()
    systems = cut_at_breaks(text)
    assert len(systems) == len(analysis.systems) == 2
    page = analysis.pages[0]
    data = {
        "format": "omrgemma.transcription/1", "input": str(SCAN), "model": "test",
        "pages": [{"index": 0, "shape": list(page.shape), "angle": page.angle,
                   "transform": page.transform.tolist(), "note": None, "systems": [1, 2]}],
        "systems": [{"number": crop.number, "page": 1, "box": list(crop.box), "kern": snip.kern,
                     "repairs": [], "finished": True, "confidence": 0.9,
                     "measures": [{"measure": m, "p": 0.3 if (crop.number, m) == (1, 2) else 0.95}
                                  for m in range(1, snip.measures + 1)],
                     "problems": [] if crop.number == 1 else [
                         {"system": 2, "measure": 3, "line": 9, "code": "spine-durations",
                          "message": "measure 3: spines <disagree>"}]}
                    for crop, snip in zip(analysis.systems, systems, strict=True)],
        "problems": [{"system": 2, "measure": 3, "line": 9, "code": "spine-durations",
                      "message": "measure 3: spines <disagree>"}],
        "low_confidence": [{"system": 1, "measure": 2, "p": 0.3, "score_measure": 2}],
        "mean_confidence": 0.9, "outputs": [], "kern": text,
    }  # fmt: skip
    path = tmp_path / "maple.omrgemma.json"
    path.write_text(json.dumps(data))
    return path


def test_preview_is_self_contained(tmp_path):
    page = write_preview(_sidecar(tmp_path)).read_text()
    assert page.count('<section class="system"') == 2
    assert page.count("data:image/jpeg;base64,") == 1 and page.count("data:image/png;base64,") == 2
    assert not re.search(r"(src|href)=\"(https?:)?//", page)  # nothing from the network
    assert page.count("<svg") >= 3  # the page overlay + two engravings
    assert "measure 3: spines &lt;disagree&gt;" in page  # escaped
    assert 'data-low="2"' in page
    index = write_index(tmp_path).read_text()
    assert "maple.preview.html" in index


def test_preview_renders_in_chromium(tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    html = write_preview(_sidecar(tmp_path))
    args = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0",
            "--window-size=1300,1800"]  # fmt: skip
    dom = subprocess.run([*args, "--dump-dom", html.as_uri()], capture_output=True, text=True,
                         timeout=120).stdout  # fmt: skip
    assert 'data-rendered="ok"' in dom, dom[:500]
    assert 'data-marked="1"' in dom  # measure 2 of system 1 coloured in its engraving
    assert re.search(r'<pre id="errors">\s*</pre>', dom), "script errors were reported"
    shot = tmp_path / "preview.png"
    subprocess.run([*args, f"--screenshot={shot}", html.as_uri()], capture_output=True,
                   timeout=120)  # fmt: skip
    assert shot.stat().st_size > 10_000
    shutil.copy(shot, Path("/tmp/omrgemma-preview.png")) if Path("/tmp").is_dir() else None

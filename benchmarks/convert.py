"""Seconds per file for kern -> MusicXML, MIDI, SVG and PNG, and `omrgemma --help` start-up time.

    .venv/bin/python benchmarks/convert.py [--files 5] [--repeat 3]

Uses the first N movements (sorted by name) of the Beethoven sonatas in $OMRGEMMA_DATA and
prints the median time per stage over files and repeats. Stages, each timed separately:
  parse      converter21 reads the kern into a music21 score (`to_score`)
  musicxml   music21 writes MusicXML from that score
  midi       music21 writes MIDI from that score
  svg        verovio engraves every page (in its subprocess)
  png        resvg rasterises every page
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time


def timed(function, *args):
    began = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - began


def main(argv: list[str] | None = None) -> int:
    from omrgemma.kern.convert import score_to_midi, score_to_musicxml, to_score
    from omrgemma.kern.files import read_kern
    from omrgemma.kern.render import render_svg_pages, svg_to_png
    from omrgemma.settings import data_dir

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    files = sorted((data_dir() / "kern/piano/beethoven-piano-sonatas").glob("*.krn"))[: args.files]
    times: dict[str, list[float]] = {k: [] for k in ("parse", "musicxml", "midi", "svg", "png")}
    pages = 0
    for path in files:
        text = read_kern(path)
        for _ in range(args.repeat):
            score, seconds = timed(to_score, text)
            times["parse"].append(seconds)
            times["musicxml"].append(timed(score_to_musicxml, score)[1])
            times["midi"].append(timed(score_to_midi, score)[1])
            svgs, seconds = timed(render_svg_pages, text)
            times["svg"].append(seconds)
            times["png"].append(sum(timed(svg_to_png, svg)[1] for svg in svgs))
        pages += len(svgs)
    startup = []
    for _ in range(args.repeat):
        began = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "omrgemma", "--help"], capture_output=True, check=True
        )
        startup.append(time.perf_counter() - began)
    print(
        f"{len(files)} Beethoven movements ({pages} pages in all), {args.repeat} repeats, medians:"
    )
    for stage, values in times.items():
        print(f"  {stage:9s} {statistics.median(values):6.2f} s per file")
    print(f"  omrgemma --help: {statistics.median(startup):.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

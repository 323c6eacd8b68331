"""Engrave kern to SVG pages with verovio, in a disposable process (see `render.py`).

Reads JSON `{"kern": str, "options": dict}` on stdin and writes JSON `{"pages": [svg, ...]}` on
stdout; exits 2 when verovio cannot load the input. Run as a script, so importing it pulls in
nothing but verovio and json.
"""

import json
import sys


def main() -> int:
    import verovio

    request = json.load(sys.stdin)
    verovio.enableLog(verovio.LOG_ERROR)
    toolkit = verovio.toolkit()
    toolkit.setOptions(request["options"])
    if not toolkit.loadData(request["kern"]):
        print("verovio could not load the input", file=sys.stderr)
        return 2
    pages = [toolkit.renderToSVG(page) for page in range(1, toolkit.getPageCount() + 1)]
    json.dump({"pages": pages}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The committed train/test split: a fixed list of held-out movements per collection.

Rule (version "omrgemma-split-v1"): in every collection folder under `DATA/kern` (a folder that
directly holds `.krn` files, e.g. `piano/joplin`, `mono/foster-songs`), sort its movements by
sha256("omrgemma-split-v1/" + relpath) where relpath is the POSIX path below `kern/`
(`piano/joplin/elite.krn`), and hold out the first round(10 % of the count), at least one. The
result is committed as `heldout.json` beside this file; `python -m omrgemma.data.split DATA`
regenerates it and a test checks that regenerating gives the committed file.

Splitting is by movement (file), never by system or page, because systems of one movement are
near-duplicates. A collection the committed split does not name (a user's own folder) is test
data in full. Training code must call `assert_not_heldout` on every file it reads.
"""

from __future__ import annotations

import hashlib
import json
import sys
from functools import lru_cache
from pathlib import Path

from omrgemma.errors import UsageError

VERSION = "omrgemma-split-v1"
HELDOUT_SHARE = 0.10
HELDOUT_JSON = Path(__file__).with_name("heldout.json")


def split_key(relpath: str) -> str:
    return hashlib.sha256(f"{VERSION}/{relpath}".encode()).hexdigest()


def choose_heldout(relpaths: list[str]) -> list[str]:
    """The held-out share of one collection's movements (relpaths below `kern/`), sorted by name."""
    count = max(1, round(HELDOUT_SHARE * len(relpaths))) if relpaths else 0
    return sorted(sorted(relpaths, key=split_key)[:count])


def collections_in(kern_dir: Path) -> dict[str, list[str]]:
    """collection (`piano/joplin`) -> sorted relpaths of its `.krn` files, for every folder holding any."""
    found: dict[str, list[str]] = {}
    for path in sorted(kern_dir.rglob("*.krn")):
        relpath = path.relative_to(kern_dir).as_posix()
        found.setdefault(relpath.rpartition("/")[0], []).append(relpath)
    return found


def build_split(kern_dir: Path) -> dict:
    """The split document for the corpora in `kern_dir`, as written to `heldout.json`."""
    collections = collections_in(kern_dir)
    return {
        "version": VERSION,
        "rule": (
            "per collection folder under kern/: sort movements by sha256('omrgemma-split-v1/' + "
            "relpath below kern/) and hold out the first round(10 %), at least one"
        ),
        "collections": {
            name: {"movements": len(paths), "heldout": choose_heldout(paths)}
            for name, paths in collections.items()
        },
    }


@lru_cache(maxsize=1)
def _committed() -> dict[str, frozenset[str]]:
    document = json.loads(HELDOUT_JSON.read_text(encoding="utf-8"))
    return {name: frozenset(c["heldout"]) for name, c in document["collections"].items()}


def kern_relpath(path: str | Path) -> str:
    """The POSIX path below the last `kern/` folder (`.../kern/piano/joplin/x.krn` -> `piano/joplin/x.krn`).

    A path that is already relative and has no `kern` part is returned as is.
    """
    parts = Path(path).parts
    if "kern" in parts:
        index = len(parts) - 1 - parts[::-1].index("kern")
        parts = parts[index + 1 :]
    return "/".join(parts)


def collection_of(path: str | Path) -> str:
    return kern_relpath(path).rpartition("/")[0]


def is_heldout(path: str | Path) -> bool:
    """True for a held-out movement, and for every movement of a collection the split does not name."""
    relpath = kern_relpath(path)
    held = _committed().get(collection_of(relpath))
    return True if held is None else relpath in held


def heldout(collection: str) -> list[str]:
    """Relpaths (below `kern/`) of the held-out movements of a named collection, sorted."""
    return sorted(_committed().get(collection, ()))


def split_collections() -> list[str]:
    return sorted(_committed())


def _files(data_dir: Path, collections: list[str] | None) -> list[Path]:
    kern_dir = Path(data_dir) / "kern"
    found = collections_in(kern_dir) if kern_dir.is_dir() else {}
    chosen = found if collections is None else {c: found.get(c, []) for c in collections}
    return [kern_dir / relpath for paths in chosen.values() for relpath in paths]


def train_files(data_dir: str | Path, collections: list[str] | None = None) -> list[Path]:
    """Movements that may be used for training: in a named collection and not held out."""
    return [p for p in _files(Path(data_dir), collections) if not is_heldout(p)]


def test_files(data_dir: str | Path, collections: list[str] | None = None) -> list[Path]:
    """Held-out movements, plus every movement of collections the split does not name."""
    return [p for p in _files(Path(data_dir), collections) if is_heldout(p)]


test_files.__test__ = False  # not a pytest test, despite the name


def assert_not_heldout(paths) -> None:
    """Raise `UsageError` naming the first held-out movement among `paths` (training must call this)."""
    for path in paths:
        if is_heldout(path):
            raise UsageError(
                "held-out movement in training data",
                path=path,
                hint="held-out movements (omrgemma/data/heldout.json) are for evaluation only",
            )


def main(argv: list[str] | None = None) -> None:
    """Regenerate `heldout.json` from `DATA/kern` (default: the shared corpora)."""
    from omrgemma.settings import data_dir

    args = sys.argv[1:] if argv is None else argv
    root = Path(args[0]) if args else data_dir()
    document = build_split(root / "kern")
    HELDOUT_JSON.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    total = sum(len(c["heldout"]) for c in document["collections"].values())
    print(
        f"{total} held-out movements in {len(document['collections'])} collections", file=sys.stderr
    )


if __name__ == "__main__":
    main()

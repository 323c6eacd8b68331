"""Where data, models and caches live. Read from the environment, with documented defaults.

Defaults are looked up beside the source tree (an editable install or a checkout) and, for a
regular `pip install .`, beside the current folder, so commands run from the repository root find
`models/` and `../shared/data` either way.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def _first_existing(*candidates: Path) -> Path:
    for candidate in candidates:
        if candidate.exists():
            return candidate
    return candidates[0]


def data_dir() -> Path:
    """The shared corpora: `$OMRGEMMA_DATA`, else `../shared/data` beside the repository."""
    if "OMRGEMMA_DATA" in os.environ:
        return Path(os.environ["OMRGEMMA_DATA"])
    return _first_existing(
        REPO_ROOT.parent / "shared" / "data", Path.cwd().parent / "shared" / "data"
    )


def models_dir() -> Path:
    """Shipped models: `$OMRGEMMA_MODELS`, else `models/` in the repository (or the current folder)."""
    if "OMRGEMMA_MODELS" in os.environ:
        return Path(os.environ["OMRGEMMA_MODELS"])
    return _first_existing(REPO_ROOT / "models", Path.cwd() / "models")


def cache_dir() -> Path:
    """Caches (JAX compilation cache, rendered data): `$OMRGEMMA_CACHE` or `$XDG_CACHE_HOME/omrgemma`."""
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "omrgemma"
    return Path(os.environ.get("OMRGEMMA_CACHE", default))

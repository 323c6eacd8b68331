"""Where data, models and caches live. Read from the environment, with documented defaults."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def data_dir() -> Path:
    """The shared corpora: `$OMRGEMMA_DATA`, else `../shared/data` beside the repository."""
    return Path(os.environ.get("OMRGEMMA_DATA", REPO_ROOT.parent / "shared" / "data"))


def models_dir() -> Path:
    """Shipped models: `$OMRGEMMA_MODELS`, else `models/` in the repository."""
    return Path(os.environ.get("OMRGEMMA_MODELS", REPO_ROOT / "models"))


def cache_dir() -> Path:
    """Caches (JAX compilation cache, rendered data): `$OMRGEMMA_CACHE` or `$XDG_CACHE_HOME/omrgemma`."""
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "omrgemma"
    return Path(os.environ.get("OMRGEMMA_CACHE", default))

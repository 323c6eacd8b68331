"""Shared fixtures: the corpora in ../shared/data (skipped with a reason when absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

from omrgemma.settings import data_dir


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared corpora folder; tests that need it skip when it is absent (CI has it)."""
    root = data_dir()
    if not (root / "kern").is_dir():
        pytest.skip(f"shared data not found at {root} (set OMRGEMMA_DATA to the corpora folder)")
    return root

"""Fixtures for the decoding tests."""

from __future__ import annotations

import pytest

from .tinymodel import Tiny, make_tiny


@pytest.fixture(scope="session")
def tiny() -> Tiny:
    """The TINY config with random weights and three random images."""
    return make_tiny()

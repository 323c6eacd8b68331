"""Device selection errors and the persistent compilation cache across processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import jax
import pytest

from omrgemma.errors import UsageError
from omrgemma.jaxsetup import select_device
from omrgemma.settings import REPO_ROOT


def test_select_device():
    assert select_device("cpu").platform == "cpu"
    assert select_device("auto") == jax.devices()[0]
    present = {d.platform for d in jax.devices()}
    missing = next(p for p in ("tpu", "gpu") if p not in present)
    with pytest.raises(UsageError, match=f"no {missing} device is available"):
        select_device(missing)
    with pytest.raises(UsageError, match="unknown device"):
        select_device("quantum")


def _run(cache):
    env = dict(os.environ, OMRGEMMA_CACHE=str(cache), JAX_PLATFORMS="cpu")
    proc = subprocess.run(
        [sys.executable, "-m", "tests.decode.cache_run"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_a_second_process_loads_compiled_code_from_the_cache(tmp_path):
    first = _run(tmp_path)
    files = sorted(p.name for p in (tmp_path / "jax").rglob("*") if p.is_file())
    second = _run(tmp_path)
    assert first["misses"] > 0 and first["hits"] == 0 and files
    assert second["misses"] == 0 and second["hits"] == first["misses"]
    assert sorted(p.name for p in (tmp_path / "jax").rglob("*") if p.is_file()) == files
    assert second["seconds"] < first["seconds"]

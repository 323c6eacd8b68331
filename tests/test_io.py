"""Atomic writes: refuse to overwrite without force, leave no temporary files, normal permissions."""

from __future__ import annotations

import os

import pytest

from omrgemma.errors import OutputExistsError
from omrgemma.io import write_atomic


def test_write_atomic_refuses_existing_file_without_force(tmp_path):
    target = tmp_path / "a.krn"
    target.write_text("old")
    with pytest.raises(OutputExistsError) as err:
        write_atomic(target, "new", force=False)
    assert "--force" in err.value.format()
    assert target.read_text() == "old"
    write_atomic(target, "new", force=True)
    assert target.read_text() == "new"


def test_write_atomic_leaves_no_temporary_files_and_usual_permissions(tmp_path):
    target = tmp_path / "sub" / "b.mid"
    write_atomic(target, b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in target.parent.iterdir()) == ["b.mid"]
    mask = os.umask(0)
    os.umask(mask)
    assert (target.stat().st_mode & 0o777) == (0o666 & ~mask)


def test_stale_temporaries_of_a_killed_write_are_removed_and_nothing_else(tmp_path):
    from omrgemma.io import remove_stale_temporaries

    stale = tmp_path / ".piece1.omrgemma.json.oms96qih.tmp"
    stale.write_text("{")
    kept = [tmp_path / ".notes.tmp", tmp_path / "piece1.krn", tmp_path / "a.tmp"]
    for path in kept:
        path.write_text("x")
    (tmp_path / ".omrgemma-extract-abc.tmp").mkdir()
    assert remove_stale_temporaries(tmp_path) == [stale]
    assert not stale.exists() and all(p.exists() for p in kept)

"""Atomic file output: nothing the user had is overwritten without asking, nothing is half-written."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from omrgemma.errors import OutputExistsError


def file_mode() -> int:
    """The mode a plain new file gets under the process's umask (mkstemp creates 0600)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def check_writable(path: Path, *, force: bool) -> None:
    """Raise `OutputExistsError` if `path` exists and `force` is false."""
    if path.exists() and not force:
        raise OutputExistsError(path)


def write_atomic(path: str | Path, data: bytes | str, *, force: bool = True) -> Path:
    """Write `data` to `path` through a temporary file in the same folder and an atomic rename."""
    path = Path(path)
    check_writable(path, force=force)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, file_mode())  # outputs get the usual mode, not mkstemp's 0600
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


# mkstemp's names: the prefix and suffix `write_atomic` gives around 8 random characters.
_TEMPORARY = re.compile(r"\..+\.[A-Za-z0-9_]{8}\.tmp")


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Delete the `.NAME.XXXX.tmp` files `write_atomic` leaves when its process is killed
    between writing and renaming (SIGKILL, power loss); the outputs they would have become are
    written again by whoever resumes. Returns what was removed."""
    removed = []
    for tmp in Path(folder).glob(".*.tmp"):
        if tmp.is_file() and _TEMPORARY.fullmatch(tmp.name):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed

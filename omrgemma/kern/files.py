"""Read a file the user says is **kern, failing with one clear line when it is not."""

from __future__ import annotations

from pathlib import Path

from omrgemma.errors import InputError, KernError

_HINT = "a **kern file is Humdrum text whose header line starts with `**kern`"


def read_kern(path: str | Path) -> str:
    """The text of a kern file: UTF-8, or Latin-1 as older Humdrum files are.

    Raises `InputError` for a missing or unreadable file and `KernError` for an empty, binary or
    non-Humdrum file (no line starting with `**`).
    """
    path = Path(path)
    if not path.exists():
        raise InputError("no such file", path=path, hint="check the path")
    if not path.is_file():
        raise InputError("is not a file", path=path, hint="give a .krn file, not a folder")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot be read ({exc.strerror})", path=path) from exc
    if b"\0" in data[:65536]:
        raise KernError("is a binary file, not **kern text", path=path, hint=_HINT)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    if not text.strip():
        raise KernError("is empty", path=path, hint=_HINT)
    if not any(line.startswith("**") for line in text.splitlines()):
        raise KernError("is not **kern text (no `**kern` header line)", path=path, hint=_HINT)
    return text

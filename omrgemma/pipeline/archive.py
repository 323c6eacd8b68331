"""Batch sources: a folder tree, a zip or tar archive, or a list file, as (path, relative name).

The relative name decides where an input's outputs go (`OUTDIR/<relative folder>/<stem>.*`), so
the output tree mirrors the input tree.

Archives come from anywhere, so they are read defensively:
- a member whose name is absolute, has a drive, or climbs with `..` rejects the whole archive
  (zip-slip) before anything is extracted;
- only regular files are extracted: symlinks, hard links and devices are skipped, never followed;
- at most `MAX_ARCHIVE_FILES` members and `MAX_ARCHIVE_BYTES` uncompressed bytes in all, counted
  on the bytes actually read (a zip bomb cannot lie about its sizes);
- members are extracted into a folder the caller provides (a temporary folder inside OUTDIR).
"""

from __future__ import annotations

import stat
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from omrgemma.errors import InputError, UsageError

MAX_ARCHIVE_FILES = 10_000
"""Most members an archive may hold."""
MAX_ARCHIVE_BYTES = 4 << 30
"""Most bytes (4 GiB) an archive may expand to."""

INPUT_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".gif", ".pdf"}
)
# Side files omrgemma writes next to its outputs; never inputs, even when OUTDIR is the source.
OWN_OUTPUT_MARKERS = ("_overlay.png", ".omrgemma.json", ".preview.html")


@dataclass(frozen=True, kw_only=True)
class Input:
    """One input file and its name relative to the batch source (posix, for the manifest)."""

    path: Path
    name: str

    @property
    def relative_dir(self) -> PurePosixPath:
        return PurePosixPath(self.name).parent

    @property
    def stem(self) -> str:
        return PurePosixPath(self.name).stem


def is_input(path: Path) -> bool:
    """An image or PDF that omrgemma did not write itself."""
    name = path.name.lower()
    if name.startswith(".") or any(name.endswith(marker) for marker in OWN_OUTPUT_MARKERS):
        return False
    return path.suffix.lower() in INPUT_SUFFIXES


def is_archive(path: Path) -> bool:
    return path.is_file() and (zipfile.is_zipfile(path) or tarfile.is_tarfile(path))


def list_inputs(source: Path, extract_dir: Path, *, skip: Path | None = None) -> list[Input]:
    """The inputs of `source` in sorted order; archives are extracted into `extract_dir`.

    skip: a folder whose contents are never inputs (the batch's OUTDIR inside the source).
    """
    if source.is_dir():
        return _folder(source, skip)
    if not source.exists():
        raise UsageError("no such file or folder", path=source)
    if is_archive(source):
        return _folder(extract(source, extract_dir), None)
    if source.suffix.lower() in INPUT_SUFFIXES:
        return [Input(path=source, name=source.name)]
    return _list_file(source)


def _folder(root: Path, skip: Path | None) -> list[Input]:
    skip = skip.resolve() if skip is not None else None
    found = []
    for path in sorted(root.rglob("*")):
        if path.is_symlink() or not path.is_file() or not is_input(path):
            continue
        if skip is not None and skip != root.resolve() and path.resolve().is_relative_to(skip):
            continue
        relative = path.relative_to(root)
        if any(part.startswith(".") for part in relative.parts):
            continue  # hidden folders, including our own extraction folder
        found.append(Input(path=path, name=relative.as_posix()))
    return found


def _list_file(source: Path) -> list[Input]:
    """One path per line, relative to the list file's folder; blank lines and `#` comments skipped."""
    try:
        text = source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(
            f"not a folder, archive, image or readable list file ({exc})",
            path=source,
            hint="give a folder, a .zip/.tar archive, or a text file with one path per line",
        ) from None
    base = source.parent.resolve()
    inputs, names = [], set()
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        path = (base / line).resolve() if not Path(line).is_absolute() else Path(line)
        name = path.relative_to(base).as_posix() if path.is_relative_to(base) else path.name
        while name in names:  # two listed files with one name outside the list's folder
            name = f"{PurePosixPath(name).parent}/_{PurePosixPath(name).name}".lstrip("./")
        names.add(name)
        inputs.append(Input(path=path, name=name))
    return inputs


def safe_member_name(name: str) -> PurePosixPath:
    """The member's path inside the extraction folder; raises `InputError` for zip-slip names."""
    normal = name.replace("\\", "/")
    path = PurePosixPath(normal)
    if normal.startswith("/") or (len(normal) > 1 and normal[1] == ":") or ".." in path.parts:
        raise InputError(
            f"archive member {name!r} would be written outside the output folder",
            hint="the archive is unsafe (zip-slip); nothing was extracted",
        )
    return PurePosixPath(*[p for p in path.parts if p not in ("", ".")])


def extract(archive: Path, target: Path) -> Path:
    """Extract the regular files of a zip or tar `archive` into `target` (see module docstring)."""
    members = list(_members(archive))
    if len(members) > MAX_ARCHIVE_FILES:
        raise InputError(
            f"the archive has {len(members)} files, more than the limit of {MAX_ARCHIVE_FILES}",
            path=archive,
            hint="split it into smaller archives",
        )
    planned = [(safe_member_name(name), size, opener) for name, size, opener in members]
    budget = MAX_ARCHIVE_BYTES
    target.mkdir(parents=True, exist_ok=True)
    for relative, declared, opener in planned:
        if declared > budget:
            raise _too_big(archive)
        destination = target.joinpath(*relative.parts)
        destination.parent.mkdir(parents=True, exist_ok=True)
        with opener() as source, destination.open("wb") as sink:
            while block := source.read(1 << 20):
                budget -= len(block)
                if budget < 0:
                    raise _too_big(archive)
                sink.write(block)
    return target


def _too_big(archive: Path) -> InputError:
    return InputError(
        f"the archive expands to more than {MAX_ARCHIVE_BYTES >> 30} GiB",
        path=archive,
        hint="split it into smaller archives",
    )


def _members(archive: Path) -> Iterator[tuple[str, int, object]]:
    """(name, declared size, opener) for each regular-file member."""
    if zipfile.is_zipfile(archive):
        bundle = zipfile.ZipFile(archive)
        for info in bundle.infolist():
            kind = stat.S_IFMT(info.external_attr >> 16)  # 0 when the zip states no file type
            if info.is_dir() or (kind and kind != stat.S_IFREG):  # links, devices, fifos
                safe_member_name(info.filename)  # a bad name still rejects the archive
                continue
            yield info.filename, info.file_size, lambda info=info: bundle.open(info)
        return
    try:
        bundle = tarfile.open(archive)
    except tarfile.TarError as exc:
        raise InputError(f"not a readable archive ({exc})", path=archive) from None
    for member in bundle.getmembers():
        if not member.isfile():  # symlinks, hard links, devices, folders
            safe_member_name(member.name)
            continue
        yield member.name, member.size, lambda member=member: bundle.extractfile(member)

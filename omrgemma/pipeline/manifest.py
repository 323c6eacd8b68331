"""The batch manifest: one JSON line per finished input, appended and fsynced after its outputs.

`manifest.jsonl` is the batch's memory. A line is written only after every output of its input
was written atomically, and it is flushed and fsynced before the next input starts, so after a
crash the manifest names exactly the inputs whose outputs are complete; a line cut short by the
crash is ignored when read back. `--resume` skips an input whose last line says "ok" with the
same input hash (sha256 of the file) and the same settings key.

`manifest.csv` is a flat view of the same records (the last record per input), rewritten
atomically at the end of a run, for spreadsheets.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any

from omrgemma.io import write_atomic

MANIFEST = "manifest.jsonl"
MANIFEST_CSV = "manifest.csv"
CSV_COLUMNS = (
    "input", "status", "error", "pages", "systems", "seconds", "pages_per_minute",
    "mean_confidence", "low_confidence_measures", "problems", "outputs", "sha256",
)  # fmt: skip


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def settings_key(settings: dict[str, Any]) -> str:
    """A short stable hash of the settings that change an input's outputs."""
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


class Manifest:
    """Append-only JSONL records, keyed by the input's path relative to the batch source."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def read(self) -> dict[str, dict[str, Any]]:
        """The last complete record of each input (a torn last line is skipped)."""
        records: dict[str, dict[str, Any]] = {}
        if not self.path.exists():
            return records
        for line in self.path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict) and "input" in record:
                records[record["input"]] = record
        return records

    def is_done(
        self, records: dict[str, dict[str, Any]], key: str, sha256: str, settings: str
    ) -> bool:
        record = records.get(key)
        return (
            record is not None
            and record.get("status") == "ok"
            and record.get("sha256") == sha256
            and record.get("settings") == settings
        )

    def append(self, record: dict[str, Any]) -> None:
        """Append one record durably: write, flush, fsync (a torn earlier line is closed first)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(record, sort_keys=True, default=str) + "\n"
        with self.path.open("a+b") as handle:
            handle.seek(0, os.SEEK_END)
            if handle.tell() > 0:
                handle.seek(-1, os.SEEK_END)
                if handle.read(1) != b"\n":  # a crash cut the last line: keep ours on its own
                    line = "\n" + line
            handle.write(line.encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())

    def write_csv(self, path: str | Path | None = None) -> Path:
        """Write the CSV view of the last record per input (atomically); returns its path."""
        target = Path(path) if path is not None else self.path.with_name(MANIFEST_CSV)
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for record in self.read().values():
            writer.writerow(_flat(record))
        return write_atomic(target, buffer.getvalue())


def _flat(record: dict[str, Any]) -> dict[str, Any]:
    seconds = record.get("seconds") or {}
    low = record.get("low_confidence") or []
    return {
        "input": record.get("input"),
        "status": record.get("status"),
        "error": record.get("error") or "",
        "pages": record.get("pages"),
        "systems": record.get("systems"),
        "seconds": seconds.get("total") if isinstance(seconds, dict) else seconds,
        "pages_per_minute": record.get("pages_per_minute"),
        "mean_confidence": record.get("mean_confidence"),
        "low_confidence_measures": "; ".join(
            f"system {m['system']} measure {m['measure']} (p={m['p']:.2f})" for m in low
        ),
        "problems": "; ".join(str(p.get("message", p)) for p in record.get("problems") or []),
        "outputs": "; ".join(record.get("outputs") or []),
        "sha256": record.get("sha256"),
    }

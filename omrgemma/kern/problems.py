"""The one record type every kern check reports: a `Problem` at a line, with a severity and a code."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Problem:
    """Something wrong with kern text.

    `line` is 1-based (0 for the file as a whole); `code` is a short stable slug that tests and
    repair match on (e.g. `field-count`, `malformed-token`); `message` is for people.
    """

    line: int
    severity: Severity
    code: str
    message: str

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def error(line: int, code: str, message: str) -> Problem:
    return Problem(line=line, severity="error", code=code, message=message)


def warning(line: int, code: str, message: str) -> Problem:
    return Problem(line=line, severity="warning", code=code, message=message)

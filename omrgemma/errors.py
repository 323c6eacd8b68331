"""One error hierarchy for everything a user can cause or fix.

The CLI maps these to exit codes in one place (`omrgemma.cli.main`); library code raises them
with a message that names the file and says what to do. Anything that is not an `OmrError` is a
bug and is shown with its traceback.
"""

from __future__ import annotations

from pathlib import Path

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_PARTIAL = 3  # a batch finished, but some of its inputs failed


class OmrError(Exception):
    """An expected failure: printed as one line, exit code 1."""

    exit_code = EXIT_FAILURE

    def __init__(self, message: str, *, path: str | Path | None = None, hint: str | None = None):
        self.message = message
        self.path = None if path is None else str(path)
        self.hint = hint
        super().__init__(self.format())

    def format(self) -> str:
        text = f"{self.path}: {self.message}" if self.path else self.message
        if self.hint:
            text += f" ({self.hint})"
        return text


class UsageError(OmrError):
    """Bad arguments or options: exit code 2."""

    exit_code = EXIT_USAGE


class InputError(OmrError):
    """An input file is unreadable, malformed or not what was expected."""


class KernError(InputError):
    """**kern text that cannot be parsed or converted."""


class ImageError(InputError):
    """An image or PDF that cannot be read or holds no music."""


class NoStavesError(ImageError):
    """A readable page on which no five-line staff was found."""


class ConversionError(OmrError):
    """A converter (music21, converter21, verovio) failed or timed out."""


class ModelError(OmrError):
    """A model directory or checkpoint that is missing, incomplete or does not match its config."""


class CheckpointError(ModelError):
    """A checkpoint whose names or shapes do not match the model."""


class OutputExistsError(OmrError):
    """An output file exists and `--force` was not given."""

    def __init__(self, path: str | Path):
        super().__init__("already exists", path=path, hint="pass --force to overwrite it")


class PartialFailure(OmrError):
    """Some inputs of a batch failed; the others were written. Exit code 3."""

    exit_code = EXIT_PARTIAL

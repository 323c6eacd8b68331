"""The CLI shell: version, help on every command, exit-code mapping, and no JAX on light commands."""

from __future__ import annotations

import subprocess
import sys

import pytest

from omrgemma import cli
from omrgemma.errors import EXIT_PARTIAL, EXIT_USAGE, InputError, PartialFailure


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "omrgemma", *args], capture_output=True, text=True)


def test_version_comes_from_package_metadata():
    from importlib.metadata import version

    result = run("--version")
    assert result.returncode == 0
    assert version("omrgemma") in result.stdout


def test_unknown_command_is_a_usage_error():
    result = run("no-such-command")
    assert result.returncode == EXIT_USAGE
    assert "no-such-command" in result.stderr


@pytest.mark.parametrize("name", list(cli.COMMANDS))
def test_every_command_has_help_with_an_example(name):
    result = run(name, "-h")
    assert result.returncode == 0, result.stderr
    assert "Example" in result.stdout


def test_every_command_is_documented_in_the_readme():
    readme = (
        cli.__file__ and __import__("pathlib").Path(cli.__file__).parents[2] / "README.md"
    ).read_text()
    for name in cli.COMMANDS:
        assert f"omrgemma {name}" in readme, f"README does not show `omrgemma {name}`"


def test_help_does_not_import_jax():
    code = "import sys; from omrgemma.cli import main\ntry: main(['--help'])\nexcept SystemExit: pass\nprint('jax' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout
    assert out.strip().endswith("False")


def test_expected_errors_become_one_line_and_their_exit_code(monkeypatch, capsys):
    def boom(*args, **kwargs):
        raise InputError("is not a **kern file", path="x.krn", hint="check the file")

    monkeypatch.setattr(cli.cli, "main", boom)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["convert", "x.krn"])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert err.strip() == "error: x.krn: is not a **kern file (check the file)"


def test_partial_failure_has_its_own_exit_code(monkeypatch):
    monkeypatch.setattr(
        cli.cli,
        "main",
        lambda *a, **k: (_ for _ in ()).throw(PartialFailure("2 of 5 inputs failed")),
    )
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["batch", "in/"])
    assert exit_info.value.code == EXIT_PARTIAL

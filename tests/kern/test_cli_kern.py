"""`omrgemma convert` and `omrgemma validate` through the real entry point: outputs, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from omrgemma import cli
from omrgemma.kern.validate import validate

from .fixtures import FEATURES, PIANO


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(list(args))
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


@pytest.fixture
def piano(tmp_path):
    path = tmp_path / "piano.krn"
    path.write_text(PIANO)
    return path


def test_convert_writes_named_outputs_and_refuses_to_overwrite(capsys, tmp_path, piano):
    out = tmp_path / "out"
    code, _, err = run_cli(
        capsys, "convert", str(piano), "--to", "musicxml,midi,svg,png", "-o", str(out)
    )
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == [
        "piano.mid",
        "piano.musicxml",
        "piano.png",
        "piano.svg",
    ]
    before = (out / "piano.mid").read_bytes()
    code, _, err = run_cli(capsys, "convert", str(piano), "--to", "midi", "-o", str(out))
    assert code == 1
    assert (
        err.strip() == f"error: {out / 'piano.mid'}: already exists (pass --force to overwrite it)"
    )
    code, _, _ = run_cli(capsys, "convert", str(piano), "--to", "midi", "-o", str(out), "--force")
    assert code == 0 and (out / "piano.mid").read_bytes() == before


def test_unknown_format_is_a_usage_error(capsys, piano):
    code, _, err = run_cli(capsys, "convert", str(piano), "--to", "pdf")
    assert code == 2 and "unknown format 'pdf'" in err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file (check the path)"),
        (b"\x89PNG\r\n\x1a\n\0\0\0binary", "is a binary file, not **kern text"),
        (b"Dear diary,\nno music here.\n", "is not **kern text"),
        (b"", "is empty"),
    ],
    ids=["missing", "binary", "not-kern", "empty"],
)
@pytest.mark.parametrize("command", ["convert", "validate"])
def test_bad_input_is_one_clear_line(capsys, tmp_path, command, content, message):
    path = tmp_path / "input.krn"
    if content is not None:
        path.write_bytes(content)
    code, _, err = run_cli(capsys, command, str(path))
    assert code == 1
    assert err.startswith(f"error: {path}: {message}")
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_validate_exit_codes_and_json_shape(capsys, tmp_path, piano):
    broken = tmp_path / "broken.krn"
    broken.write_text(PIANO.replace(".\t4ee\t.\n", ".\t4ee\n").replace("4gg]", "4gg"))
    code, out, _ = run_cli(capsys, "validate", "--json", str(piano), str(broken))
    assert code == 1
    report = json.loads(out)
    assert [r["path"] for r in report] == [str(piano), str(broken)]
    assert report[0]["errors"] == 0 and report[0]["problems"] == []
    assert report[1]["errors"] == 2
    assert {p["code"] for p in report[1]["problems"]} == {"field-count", "tie-unclosed"}
    assert set(report[1]["problems"][0]) == {"line", "severity", "code", "message"}
    code, out, _ = run_cli(capsys, "validate", str(piano))
    assert code == 0


def test_validate_repair_writes_a_clean_copy(capsys, tmp_path):
    broken = tmp_path / "broken.krn"
    broken.write_text(PIANO.replace(".\t4ee\t.\n", ".\t4ee\n").replace("*-\t*-\n", ""))
    fixed = tmp_path / "fixed.krn"
    code, out, _ = run_cli(capsys, "validate", "--repair", str(broken), "-o", str(fixed), "--json")
    assert code == 0
    assert [f["code"] for f in json.loads(out)[0]["fixes"]] == ["field-count", "missing-terminator"]
    assert validate(fixed.read_text()) == []
    code, _, err = run_cli(capsys, "validate", "--repair", str(broken), "-o", str(fixed))
    assert code == 1 and "already exists" in err
    code, _, err = run_cli(capsys, "validate", "--repair", str(broken))
    assert code == 2 and "--repair needs -o" in err


def test_convert_does_not_import_jax(tmp_path):
    path = tmp_path / "features.krn"
    path.write_text(FEATURES)
    code = (
        "import sys\nfrom omrgemma.cli import main\n"
        f"try: main(['convert', {str(path)!r}, '--to', 'musicxml,mei', '-q'])\n"
        "except SystemExit as e: print('exit', e.code)\n"
        "print('jax' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["exit", "0", "False"], done.stderr
    assert (tmp_path / "features.mei").exists()

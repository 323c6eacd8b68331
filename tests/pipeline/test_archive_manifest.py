"""Batch sources read safely (zip-slip, links, limits) and the crash-safe manifest."""

from __future__ import annotations

import io
import json
import os
import tarfile
import zipfile

import pytest

from omrgemma.errors import InputError
from omrgemma.pipeline import archive
from omrgemma.pipeline.archive import list_inputs, safe_member_name
from omrgemma.pipeline.manifest import Manifest


def _zip(path, members: dict[str, bytes]):
    with zipfile.ZipFile(path, "w") as bundle:
        for name, data in members.items():
            bundle.writestr(name, data)
    return path


@pytest.mark.parametrize("name", ["../evil.png", "a/../../evil.png", "/etc/evil.png",
                                  "C:/evil.png", "..\\evil.png"])  # fmt: skip
def test_zip_slip_rejects_the_archive(tmp_path, name):
    source = _zip(tmp_path / "in.zip", {"ok.png": b"x", name: b"x"})
    out = tmp_path / "out"
    with pytest.raises(InputError, match="outside the output folder"):
        list_inputs(source, out / "extract")
    assert not any(tmp_path.rglob("evil.png"))
    assert not (out / "extract" / "ok.png").exists()  # checked before anything is written


def test_zip_tree_is_mirrored_and_non_inputs_skipped(tmp_path):
    source = _zip(tmp_path / "in.zip", {"a/one.png": b"1", "b/c/two.pdf": b"2", "notes.txt": b"t",
                                        "a/one_overlay.png": b"o"})  # fmt: skip
    inputs = list_inputs(source, tmp_path / "x")
    assert [i.name for i in inputs] == ["a/one.png", "b/c/two.pdf"]
    assert inputs[1].path.read_bytes() == b"2"


def test_tar_symlinks_are_skipped_not_followed(tmp_path):
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"secret")
    path = tmp_path / "in.tar"
    with tarfile.open(path, "w") as bundle:
        link = tarfile.TarInfo("link.png")
        link.type, link.linkname = tarfile.SYMTYPE, str(secret)
        bundle.addfile(link)
        data = tarfile.TarInfo("real.png")
        data.size = 4
        bundle.addfile(data, io.BytesIO(b"real"))
    inputs = list_inputs(path, tmp_path / "x")
    assert [i.name for i in inputs] == ["real.png"]
    assert not (tmp_path / "x" / "link.png").exists()


def test_size_and_count_limits(tmp_path, monkeypatch):
    source = _zip(tmp_path / "in.zip", {f"p{i}.png": b"0" * 100 for i in range(5)})
    monkeypatch.setattr(archive, "MAX_ARCHIVE_FILES", 4)
    with pytest.raises(InputError, match="more than the limit of 4"):
        list_inputs(source, tmp_path / "x")
    monkeypatch.setattr(archive, "MAX_ARCHIVE_FILES", 10)
    monkeypatch.setattr(archive, "MAX_ARCHIVE_BYTES", 450)
    with pytest.raises(InputError, match="expands to more than"):
        list_inputs(source, tmp_path / "y")


def test_safe_names_are_normalised():
    assert str(safe_member_name("./a//b.png")) == "a/b.png"


def test_folder_skips_own_outputs_and_outdir(tmp_path):
    (tmp_path / "s").mkdir()
    for name in ["s/one.png", "s/one_overlay.png", "one.png", "out/one.png", ".hidden/x.png"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    names = [i.name for i in list_inputs(tmp_path, tmp_path / "e", skip=tmp_path / "out")]
    assert names == ["one.png", "s/one.png"]


def test_list_file(tmp_path):
    (tmp_path / "a.png").write_bytes(b"x")
    listing = tmp_path / "list.txt"
    listing.write_text("# scans\n\na.png\n" + str(tmp_path / "a.png") + "\n")
    inputs = list_inputs(listing, tmp_path / "e")
    assert [i.path for i in inputs] == [tmp_path / "a.png"] * 2
    assert len({i.name for i in inputs}) == 2


def test_manifest_survives_a_torn_line(tmp_path):
    manifest = Manifest(tmp_path / "manifest.jsonl")
    manifest.append({"input": "a.png", "status": "ok", "sha256": "1", "settings": "s"})
    with open(manifest.path, "a") as handle:
        handle.write('{"input": "b.png", "stat')  # the process died mid-write
    manifest.append({"input": "c.png", "status": "failed", "sha256": "3", "settings": "s"})
    records = manifest.read()
    assert sorted(records) == ["a.png", "c.png"]
    assert manifest.is_done(records, "a.png", "1", "s")
    assert not manifest.is_done(records, "a.png", "2", "s")  # the file changed
    assert not manifest.is_done(records, "a.png", "1", "t")  # other settings
    assert not manifest.is_done(records, "c.png", "3", "s")  # failed: retried
    csv_text = manifest.write_csv().read_text()
    assert csv_text.splitlines()[0].startswith("input,status,error,pages")
    assert len(csv_text.splitlines()) == 3
    lines = manifest.path.read_text().splitlines()
    assert json.loads(lines[-1])["input"] == "c.png"
    assert os.path.getsize(manifest.path) > 0

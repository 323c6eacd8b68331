"""The committed split: stable (regenerates to the committed file), about 10 %, and enforced."""

from __future__ import annotations

import json

import pytest

from omrgemma.data import split
from omrgemma.errors import UsageError


def test_regenerating_the_split_gives_the_committed_file(shared_data):
    committed = json.loads(split.HELDOUT_JSON.read_text())
    assert split.build_split(shared_data / "kern") == committed


def test_each_collection_holds_out_about_ten_percent():
    document = json.loads(split.HELDOUT_JSON.read_text())
    assert "piano/beethoven-piano-sonatas" in document["collections"]
    for name, entry in document["collections"].items():
        n, held = entry["movements"], len(entry["heldout"])
        assert held == max(1, round(0.1 * n)), name
        assert all(path.startswith(name + "/") for path in entry["heldout"])


def test_rule_is_the_documented_hash_order():
    paths = [f"demo/c/{i:03d}.krn" for i in range(30)]
    chosen = split.choose_heldout(paths)
    by_hash = sorted(paths, key=lambda p: split.split_key(p))
    assert chosen == sorted(by_hash[:3])  # round(0.1 * 30) = 3
    assert split.split_key("x") == __import__("hashlib").sha256(b"omrgemma-split-v1/x").hexdigest()


def test_lookup_by_relative_or_absolute_path():
    first = split.heldout("piano/joplin")[0]
    assert split.is_heldout(first)
    assert split.is_heldout(f"/anywhere/data/kern/{first}")
    document = json.loads(split.HELDOUT_JSON.read_text())
    train = next(
        f"piano/joplin/{name}"
        for name in ("elite.krn", "entertainer.krn", "augustan.krn", "antoinette.krn")
        if f"piano/joplin/{name}" not in document["collections"]["piano/joplin"]["heldout"]
    )
    assert not split.is_heldout(train)


def test_unknown_collection_is_test_data_in_full():
    assert split.is_heldout("my-own/scores/piece.krn")


def test_train_and_test_files_partition_the_corpora(shared_data):
    collections = ["piano/joplin", "mono/foster-songs"]
    train = split.train_files(shared_data, collections)
    test = split.test_files(shared_data, collections)
    assert len(train) + len(test) == 47 + 38
    assert len(test) == 5 + 4
    assert not set(train) & set(test)
    split.assert_not_heldout(train)
    with pytest.raises(UsageError, match="held-out"):
        split.assert_not_heldout(train + test[:1])


def test_user_collection_files_are_all_test(tmp_path):
    folder = tmp_path / "kern" / "piano" / "mine"
    folder.mkdir(parents=True)
    for name in ("a.krn", "b.krn"):
        (folder / name).write_text("**kern\n4c\n*-\n")
    assert split.train_files(tmp_path) == []
    assert [p.name for p in split.test_files(tmp_path)] == ["a.krn", "b.krn"]

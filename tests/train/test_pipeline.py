"""The data stream is a pure function of (seed, position): resumable, cacheable, worker-independent."""

from __future__ import annotations

import numpy as np
import pytest
from synthetic import IDS, CrashingLetterMaker, LetterMaker, encode

from omrgemma.data.pipeline import ShardStream, StreamSpec, shard_path
from omrgemma.data.sequence import bucket_for, layout

SPEC = StreamSpec(seed=5, batch_size=4, shard_size=8, text_buckets=(8, 16), special=IDS)


def batches(start=0, n=6, **kwargs):
    stream = ShardStream(SPEC, LetterMaker(), encode, start=start, **kwargs)
    try:
        return [stream.next_batch() for _ in range(n)], stream.position
    finally:
        stream.close()


def assert_same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x.keys() == y.keys()
        for key in x:
            np.testing.assert_array_equal(x[key], y[key])


def test_layout_known_values():
    out = layout([7], [10, 11], IDS, 8)
    assert out["tokens"].tolist() == [2, 7, 3, 10, 11, 1, 0, 0]
    assert out["mask_ar"].tolist() == [0, 0, 0, 1, 1, 1, 1, 1]
    assert out["mask_loss"].tolist() == [0, 0, 0, 1, 1, 1, 0, 0]
    assert out["input_mask"].tolist() == [1, 1, 1, 1, 1, 1, 0, 0]
    assert layout([7], [10, 11, 12, 13, 14], IDS, 8) is None  # 9 tokens: dropped, not cut
    assert bucket_for(9, (8, 16)) == 16 and bucket_for(17, (8, 16)) is None


def test_the_images_carry_the_text():
    (batch, *_), _ = batches(n=1)
    for row in range(4):
        letters = batch["tokens"][row][batch["mask_loss"][row] == 1][:-1] - 4
        image = batch["images"][row]
        for j, k in enumerate(letters):
            assert (image[k, 4 * j : 4 * j + 4] == 0).all()


def test_resuming_mid_shard_continues_the_same_stream():
    full, end = batches(n=6)
    assert end == 24
    tail, _ = batches(start=12, n=3)  # 12 = 1.5 shards of 8
    assert_same(full[3:], tail)
    with pytest.raises(ValueError):
        ShardStream(SPEC, LetterMaker(), encode, start=2, workers=0)


def test_a_different_seed_gives_different_data():
    other = ShardStream(
        StreamSpec(seed=6, batch_size=4, shard_size=8, text_buckets=(8, 16), special=IDS),
        LetterMaker(), encode, workers=0,
    )  # fmt: skip
    assert not np.array_equal(other.next_batch()["tokens"], batches(n=1)[0][0]["tokens"])


def test_cache_and_worker_processes_give_the_same_batches(tmp_path):
    plain, _ = batches(n=4, workers=0)
    cached, _ = batches(n=4, workers=0, cache=tmp_path)
    assert shard_path(tmp_path, SPEC, 0).is_file() and shard_path(tmp_path, SPEC, 1).is_file()
    again, _ = batches(n=4, workers=0, cache=tmp_path)  # read back
    spawned, _ = batches(n=4, workers=1)
    assert_same(plain, cached)
    assert_same(plain, again)
    assert_same(plain, spawned)


def test_a_crashing_worker_costs_time_not_data():
    plain, _ = batches(n=8, workers=0)
    stream = ShardStream(SPEC, CrashingLetterMaker(), encode, workers=1)
    try:
        # 4 shards: the first 3 each restart the pool, the last gives up on workers
        with pytest.warns(RuntimeWarning, match="rendering worker failed on shard"):
            crashed = [stream.next_batch() for _ in range(8)]
    finally:
        stream.close()
    assert_same(plain, crashed)
    assert [f.split(":")[0] for f in stream.worker_failures] == [f"shard {i}" for i in range(4)]
    assert all("BrokenProcessPool" in f for f in stream.worker_failures)
    assert stream._pool is None  # given up after the third restart: shards built here from then on


def test_batches_are_length_sorted_within_a_shard():
    spec = StreamSpec(seed=1, batch_size=4, shard_size=16, text_buckets=(4, 6, 8), special=IDS)
    stream = ShardStream(spec, LetterMaker(), encode, workers=0)
    widths = [stream.next_batch()["tokens"].shape[1] for _ in range(4)]
    # 16 examples of 1-4 letters (4-7 tokens with bos/sep/eos): short ones share small buckets
    assert min(widths) < max(widths)


def test_old_cached_shards_are_pruned(tmp_path):
    batches(n=6, workers=0, cache=tmp_path, keep_shards=1)  # shards 0, 1, 2 of 8 examples
    assert not shard_path(tmp_path, SPEC, 0).exists() and not shard_path(tmp_path, SPEC, 1).exists()
    assert shard_path(tmp_path, SPEC, 2).is_file()

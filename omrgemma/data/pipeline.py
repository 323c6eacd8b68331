"""The training data stream: shards of rendered examples, built by worker processes, cached, resumable.

The stream is a pure function of (seed, position). Sample `i` lives in shard `i // shard_size`;
a shard is built from `numpy.random.default_rng((seed, shard))` alone, so it is the same whoever
builds it, in which process, and whether it was built now or read back from the cache. Within a
shard the examples are sorted by token length and cut into batches (so a batch pads little), and
the batch order is shuffled with the same rng. A checkpoint stores only `position` (samples
consumed), and `ShardStream(spec, start=position)` continues exactly where the run stopped.

    example maker (worker) -> image uint8[H, W] + kern text -> token ids
    shard  = npz of images uint8[N, H, W], tokens int32[N, L] (0-padded), lengths int32[N]
    batch  = images uint8[B, H, W] + the `sequence.layout` arrays int32[B, T+1]

Rendering runs in `workers` processes (spawn: JAX in the parent must not be forked), `prefetch`
shards ahead of the trainer; `wait_s` on each batch tells whether the trainer starved.
"""

from __future__ import annotations

import collections
import hashlib
import json
import multiprocessing
import os
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from omrgemma.data.sequence import SpecialIds, bucket_for, layout

_WORKER_TIMEOUT_S = 600.0  # far longer than any shard takes to render
_POOL_RESTARTS = 3  # then shards are built in the trainer's process for the rest of the stream


class ExampleMaker(Protocol):
    """Makes one training example from a random generator (picklable: it travels to workers)."""

    def __call__(self, rng: np.random.Generator) -> tuple[np.ndarray, str] | None:
        """(image uint8[H, W] at the model input size, target text), or None to draw again."""


class TextEncoder(Protocol):
    """Text -> ids, without specials (picklable)."""

    def __call__(self, text: str) -> list[int]: ...


@dataclass(frozen=True, kw_only=True)
class StreamSpec:
    """Everything that determines the stream; its hash names the cache folder."""

    seed: int = 0
    batch_size: int = 16
    shard_size: int = 256  # a multiple of batch_size
    text_buckets: tuple[int, ...] = (64, 96, 128, 192, 256)
    prefix_ids: tuple[int, ...] = ()
    special: SpecialIds
    max_attempts: int = 20  # draws per example before giving up on a shard
    name: str = "stream"  # describes the maker and tokenizer (part of the cache key)

    def __post_init__(self) -> None:
        if self.shard_size % self.batch_size:
            raise ValueError(f"shard_size {self.shard_size} is not a multiple of {self.batch_size}")

    @property
    def max_suffix(self) -> int:
        """Longest suffix (ids, without <eos>) that fits the largest bucket."""
        return max(self.text_buckets) - len(self.prefix_ids) - 3  # bos, sep, eos

    def fingerprint(self) -> str:
        blob = json.dumps(asdict(self), sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def build_shard(
    spec: StreamSpec, shard: int, maker: ExampleMaker, encode: TextEncoder
) -> dict[str, np.ndarray]:
    """Shard `shard` of the stream: images uint8[N,H,W], tokens int32[N,L], lengths int32[N]."""
    rng = np.random.default_rng((spec.seed, shard))
    images, ids = [], []
    while len(images) < spec.shard_size:
        for _ in range(spec.max_attempts):
            made = maker(rng)
            if made is None:
                continue
            image, text = made
            tokens = encode(text)
            if 0 < len(tokens) <= spec.max_suffix:
                images.append(image)
                ids.append(tokens)
                break
        else:
            raise RuntimeError(f"shard {shard}: {spec.max_attempts} draws in a row made no example")
    lengths = np.asarray([len(t) for t in ids], np.int32)
    padded = np.zeros((len(ids), int(lengths.max())), np.int32)
    for row, tokens in enumerate(ids):
        padded[row, : len(tokens)] = tokens
    return {"images": np.stack(images), "tokens": padded, "lengths": lengths}


def batches_of_shard(spec: StreamSpec, shard: int, data: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Row indices of each batch: length-sorted chunks in a shuffled order (deterministic)."""
    order = np.argsort(data["lengths"], kind="stable")
    chunks = [order[i : i + spec.batch_size] for i in range(0, len(order), spec.batch_size)]
    perm = np.random.default_rng((spec.seed, shard, 1)).permutation(len(chunks))
    return [chunks[i] for i in perm]


def collate(
    spec: StreamSpec, data: dict[str, np.ndarray], rows: np.ndarray
) -> dict[str, np.ndarray]:
    """The batch of `rows`: images and the sequence layout, padded to one text bucket (+1)."""
    longest = int(data["lengths"][rows].max()) + len(spec.prefix_ids) + 3
    text_len = bucket_for(longest, spec.text_buckets)
    assert text_len is not None, "build_shard keeps only examples that fit"
    seqs = [
        layout(spec.prefix_ids, data["tokens"][r, : data["lengths"][r]], spec.special, text_len + 1)
        for r in rows
    ]
    batch = {key: np.stack([s[key] for s in seqs]) for key in seqs[0]}
    batch["images"] = data["images"][rows]
    return batch


# ---------------------------------------------------------------------------------------------
# Cache and workers


def shard_path(cache: Path, spec: StreamSpec, shard: int) -> Path:
    return Path(cache) / spec.fingerprint() / f"shard-{shard:07d}.npz"


def load_or_build(
    spec: StreamSpec, shard: int, maker: ExampleMaker, encode: TextEncoder, cache: Path | None
) -> tuple[dict[str, np.ndarray], float]:
    """(shard, seconds spent building it; 0 when it came from the cache)."""
    path = shard_path(cache, spec, shard) if cache else None
    if path is not None and path.is_file():
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}, 0.0
    t0 = time.monotonic()
    data = build_shard(spec, shard, maker, encode)
    seconds = time.monotonic() - t0
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp.npz")
        with os.fdopen(fd, "wb") as handle:
            np.savez_compressed(handle, **data)  # renders are mostly white: ~10x smaller
        os.replace(tmp, path)
    return data, seconds


_WORKER: dict[str, Any] = {}


def _worker_init(maker: ExampleMaker, encode: TextEncoder, cache: str | None, nice: int) -> None:
    if nice:
        os.nice(nice)
    _WORKER.update(maker=maker, encode=encode, cache=Path(cache) if cache else None)


def _worker_shard(spec: StreamSpec, shard: int):
    return load_or_build(spec, shard, _WORKER["maker"], _WORKER["encode"], _WORKER["cache"])


class ShardStream:
    """Batches from position `start` on, shards built `prefetch` ahead by `workers` processes.

    `workers=0` builds shards in this process (tests, debugging). With a `cache` folder, each
    shard is saved when built and read back when present; shards `keep_shards` behind the current
    one are deleted (the stream never returns to them). Attributes after each batch:
    `position` (samples consumed: store it in checkpoints), `last_wait_s`, and `render_s` /
    `rendered` (time spent building shards and how many examples that made).
    """

    def __init__(
        self,
        spec: StreamSpec,
        maker: ExampleMaker,
        encode: TextEncoder,
        *,
        start: int = 0,
        workers: int = 1,
        prefetch: int = 2,
        cache: Path | None = None,
        worker_nice: int = 0,
        keep_shards: int = 4,
    ) -> None:
        if start % spec.batch_size:
            raise ValueError(f"position {start} is not at a batch boundary ({spec.batch_size})")
        self.spec, self.maker, self.encode, self.cache = spec, maker, encode, cache
        self.keep_shards = keep_shards
        self.position = start
        self.last_wait_s = 0.0
        self.render_s = 0.0
        self.rendered = 0
        self.worker_failures: list[str] = []
        self._pool: ProcessPoolExecutor | None = None
        self._pending: collections.deque[tuple[int, Future]] = collections.deque()
        self._next_shard = start // spec.shard_size
        self._current: tuple[int, dict, list] | None = None
        self._workers = workers
        self._initargs = (maker, encode, str(cache) if cache else None, worker_nice)
        self._prefetch = max(prefetch, workers) if workers else 0
        if workers > 0:
            self._start_pool()

    def _start_pool(self) -> None:
        self._pool = ProcessPoolExecutor(
            self._workers, mp_context=multiprocessing.get_context("spawn"),
            initializer=_worker_init, initargs=self._initargs,
        )  # fmt: skip
        queued = [shard for shard, _ in self._pending]  # from a pool that failed
        self._pending = collections.deque(
            (shard, self._pool.submit(_worker_shard, self.spec, shard)) for shard in queued
        )
        self._fill()

    def _fill(self) -> None:
        while self._pool is not None and len(self._pending) < self._prefetch:
            shard = self._next_shard
            self._pending.append((shard, self._pool.submit(_worker_shard, self.spec, shard)))
            self._next_shard += 1

    def _from_worker(self, shard: int) -> tuple[dict[str, np.ndarray], float]:
        assert self._pool is not None
        queued, future = self._pending.popleft()
        assert queued == shard, (queued, shard)
        try:
            result = future.result(timeout=_WORKER_TIMEOUT_S)
        except (BrokenProcessPool, FutureTimeout) as exc:
            # A worker died (or hung): the pool cannot be trusted any more. Shards are seeded by
            # their index, so building this one here, and the queued ones in a new pool, gives
            # the same data.
            reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            self.worker_failures.append(f"shard {shard}: {reason}")
            self._stop_pool()
            restart = len(self.worker_failures) <= _POOL_RESTARTS
            warnings.warn(
                f"rendering worker failed on shard {shard} ({reason}); building it in the "
                + ("trainer's process and restarting the workers" if restart else
                   "trainer's process, and every later shard too"),
                RuntimeWarning, stacklevel=4,
            )  # fmt: skip
            if restart:
                self._start_pool()
            else:
                self._pending.clear()  # futures of the dead pool
            return load_or_build(self.spec, shard, self.maker, self.encode, self.cache)
        self._fill()
        return result

    def _shard(self, shard: int) -> dict[str, np.ndarray]:
        if self._pool is None:
            data, seconds = load_or_build(self.spec, shard, self.maker, self.encode, self.cache)
        else:
            data, seconds = self._from_worker(shard)
        if self.cache is not None and shard >= self.keep_shards:
            # The stream never goes back: only the shards a resume may need are worth keeping.
            shard_path(self.cache, self.spec, shard - self.keep_shards).unlink(missing_ok=True)
        if seconds:
            self.render_s += seconds
            self.rendered += len(data["lengths"])
        return data

    def next_batch(self) -> dict[str, np.ndarray]:
        t0 = time.monotonic()
        shard, offset = divmod(self.position, self.spec.shard_size)
        if self._current is None or self._current[0] != shard:
            data = self._shard(shard)
            self._current = (shard, data, batches_of_shard(self.spec, shard, data))
        _, data, batches = self._current
        batch = collate(self.spec, data, batches[offset // self.spec.batch_size])
        self.position += self.spec.batch_size
        self.last_wait_s = time.monotonic() - t0
        return batch

    def _stop_pool(self) -> None:
        """Kill the workers at once (a shard half-rendered is not worth waiting for)."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        # The executor has no public way to kill its workers before Python 3.14.
        for process in list(getattr(pool, "_processes", {}).values()):
            process.terminate()
        pool.shutdown(wait=True, cancel_futures=True)

    def close(self) -> None:
        self._stop_pool()
        self._pending.clear()


def take_examples(
    spec: StreamSpec, maker: ExampleMaker, encode: TextEncoder, n: int, *, shard: int = 10**6
) -> list[dict[str, np.ndarray]]:
    """`n` examples as batches of `spec.batch_size` from a shard far from the training stream
    (for fixed evaluation slices when no held-out maker is given)."""
    data = build_shard(spec, shard, maker, encode)
    rows = np.arange(min(n, len(data["lengths"])))
    return [
        collate(spec, data, rows[i : i + spec.batch_size])
        for i in range(0, len(rows), spec.batch_size)
    ]


def fit_width(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """uint8[h, w] -> uint8[height, width]: scaled to `height` (shrunk more only if too wide),
    centred vertically, padded with white on the right. A stand-in for `omrgemma.image.crops`."""
    import cv2

    h, w = image.shape
    scale = min(height / h, width / w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    resized = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA)
    out = np.full((height, width), 255, np.uint8)
    top = (height - nh) // 2
    out[top : top + nh, :nw] = resized
    return out


Encode = Callable[[str], list[int]]
__all__: Sequence[str] = [
    "ExampleMaker", "StreamSpec", "ShardStream", "build_shard", "collate", "take_examples",
    "fit_width",
]  # fmt: skip

"""Peak host memory of loading a real-size (3B, 224 px) transformers checkpoint.

Writes a random bf16 PaliGemma 2 3B checkpoint in the transformers layout (sharded
safetensors + index JSON, ~6 GB) to a temporary directory, streaming each tensor in small
chunks so that writing stays small; then loads it with `omrgemma.checkpoint.load_any` in a
fresh subprocess and reports that process's peak RSS (`ru_maxrss`) divided by the checkpoint
size. The target is < 1.5. The temporary files are deleted at the end.

    nice .venv/bin/python benchmarks/checkpoint_memory.py [--tmp /tmp] [--shard-gb 2]
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import ml_dtypes
import numpy as np

from omrgemma.checkpoint import hf_placements
from omrgemma.config import PALIGEMMA2_3B_224, PRESETS, hf_vocab_size, to_hf_config
from omrgemma.nn.layers import flatten_dict
from omrgemma.nn.paligemma import abstract_params

CHUNK = 16 * 1024 * 1024  # elements generated at a time


def hf_tensor_shapes(config) -> dict[str, tuple[int, ...]]:
    """Every tensor of the transformers layout with its shape, from our name map."""
    abstract = flatten_dict(abstract_params(config))
    shapes = {}
    for pl in hf_placements(config):
        shape = pl.tf.their_shape(abstract[pl.ours].shape[len(pl.index) :])
        if pl.tf.rows:
            shape = (hf_vocab_size(config), *shape[1:])
        shapes[pl.theirs] = shape
    return shapes


def legacy_name(name: str) -> str:
    """The hub spelling, as official files have it."""
    for new, old in (
        ("model.language_model.", "language_model.model."),
        ("model.vision_tower.", "vision_tower."),
        ("model.multi_modal_projector.", "multi_modal_projector."),
    ):
        if name.startswith(new):
            return old + name[len(new) :]
    return name


def write_streaming_safetensors(path: Path, shapes: dict[str, tuple[int, ...]], rng) -> int:
    """A bf16 safetensors file written tensor by tensor, in chunks; returns its size."""
    header, offset = {}, 0
    for name, shape in shapes.items():
        nbytes = 2 * math.prod(shape)
        header[name] = {
            "dtype": "BF16",
            "shape": list(shape),
            "data_offsets": [offset, offset + nbytes],
        }
        offset += nbytes
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    with open(path, "wb") as f:
        f.write(len(blob).to_bytes(8, "little"))
        f.write(blob)
        for shape in shapes.values():
            left = math.prod(shape)
            while left:
                n = min(left, CHUNK)
                f.write(
                    (0.02 * rng.standard_normal(n, np.float32)).astype(ml_dtypes.bfloat16).tobytes()
                )
                left -= n
    return path.stat().st_size


def write_checkpoint(directory: Path, shard_bytes: int, config=PALIGEMMA2_3B_224) -> int:
    shapes = {legacy_name(k): v for k, v in hf_tensor_shapes(config).items()}
    shards, current, size = [], {}, 0
    for name, shape in shapes.items():
        nbytes = 2 * math.prod(shape)
        if current and size + nbytes > shard_bytes:
            shards.append(current)
            current, size = {}, 0
        current[name] = shape
        size += nbytes
    shards.append(current)
    rng = np.random.default_rng(0)
    total, weight_map = 0, {}
    for i, shard in enumerate(shards, 1):
        file = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
        total += write_streaming_safetensors(directory / file, shard, rng)
        weight_map.update(dict.fromkeys(shard, file))
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (directory / "model.safetensors.index.json").write_text(json.dumps(index))
    hf = to_hf_config(config)
    hf["dtype"] = "bfloat16"
    (directory / "config.json").write_text(json.dumps(hf))
    return total


LOAD = """
import resource, sys, time
import jax
from omrgemma.checkpoint import load_any
t = time.time()
loaded = load_any(sys.argv[1])
jax.block_until_ready(loaded.params)
n = sum(x.size for x in jax.tree.leaves(loaded.params))
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, n, time.time() - t)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tmp", default="/tmp", help="where to write the ~6 GB checkpoint")
    parser.add_argument("--shard-gb", type=float, default=2.0, help="shard size in GB")
    parser.add_argument("--preset", default=PALIGEMMA2_3B_224.name, choices=sorted(PRESETS),
                        help="architecture (tiny: a seconds-long smoke test)")  # fmt: skip
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="omrgemma-ckpt-mem-", dir=args.tmp))
    try:
        t = time.time()
        size = write_checkpoint(directory, int(args.shard_gb * 1e9), PRESETS[args.preset])
        print(f"wrote {size / 1e9:.2f} GB in {time.time() - t:.0f} s to {directory}", flush=True)
        out = subprocess.run([sys.executable, "-c", LOAD, str(directory)], check=True,
                             capture_output=True, text=True)  # fmt: skip
        peak, n_params, seconds = out.stdout.split()
        peak = int(peak)
        print(f"loaded {int(n_params):,} parameters in {float(seconds):.0f} s")
        print(f"peak RSS {peak / 1e9:.2f} GB / checkpoint {size / 1e9:.2f} GB = {peak / size:.2f}")
    finally:
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()

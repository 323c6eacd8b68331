"""Training state checkpoints: safetensors for arrays, JSON for everything else, no pickle.

A checkpoint is a folder `RUN/checkpoints/step-NNNNNNNN/` holding

    state.safetensors   every array of the state pytree (params, optimizer state, step, rng),
                        keyed by its pytree path (`params/llm/layers/attn/q_einsum/w`, ...)
    meta.json           step, data position, seconds trained, configs, anything JSON-able

It is written under a temporary name and renamed into place, then `RUN/checkpoints/latest` (a text
file naming the folder) is replaced atomically, so a crash at any moment leaves the previous
checkpoint intact. Restoring needs a template state of the same structure (from `jax.eval_shape`
of the initialiser): every key must match both ways, or `CheckpointError` names the mismatch.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from omrgemma.errors import CheckpointError
from omrgemma.io import write_atomic

STATE_FILE = "state.safetensors"
META_FILE = "meta.json"
LATEST = "latest"


def path_key(path: tuple) -> str:
    """A pytree key path as a slash-separated name: (DictKey('a'), SequenceKey(0)) -> 'a/0'."""
    parts = []
    for entry in path:
        for attr in ("key", "name", "idx"):
            if hasattr(entry, attr):
                parts.append(str(getattr(entry, attr)))
                break
        else:
            parts.append(str(entry))
    return "/".join(parts)


def flatten_state(state: Any) -> dict[str, np.ndarray]:
    """Every array leaf of `state` on the host, keyed by its path (None leaves are skipped)."""
    import jax

    leaves, _ = jax.tree_util.tree_flatten_with_path(state)
    flat: dict[str, np.ndarray] = {}
    for path, leaf in leaves:
        flat[path_key(path)] = np.asarray(jax.device_get(leaf))
    return flat


def unflatten_state(template: Any, flat: dict[str, np.ndarray], *, source: Path) -> Any:
    """`template` with its leaves replaced by `flat[path]`, checking names, shapes and dtypes."""
    import jax

    leaves, treedef = jax.tree_util.tree_flatten_with_path(template)
    wanted = {path_key(p) for p, _ in leaves}
    missing = sorted(wanted - flat.keys())
    unexpected = sorted(flat.keys() - wanted)
    if missing or unexpected:
        raise CheckpointError(
            f"checkpoint does not match the model: missing {missing[:5]}, unexpected {unexpected[:5]}",
            path=source,
            hint="resume with the same model config and optimizer settings the run started with",
        )
    values = []
    for path, leaf in leaves:
        key = path_key(path)
        value = flat[key]
        if tuple(value.shape) != tuple(leaf.shape):
            raise CheckpointError(
                f"shape of {key} is {value.shape}, the model wants {tuple(leaf.shape)}", path=source
            )
        values.append(value.astype(leaf.dtype, copy=False))
    return jax.tree_util.tree_unflatten(treedef, values)


def save_checkpoint(run_dir: Path, state: Any, meta: dict, *, keep: int = 2) -> Path:
    """Write `state` and `meta` as checkpoint `step-{meta['step']:08d}` atomically; keep the last `keep`."""
    from safetensors.numpy import save_file

    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    name = f"step-{int(meta['step']):08d}"
    final = root / name
    tmp = root / f".{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_file(flatten_state(state), str(tmp / STATE_FILE))
    (tmp / META_FILE).write_text(json.dumps(meta, indent=1, sort_keys=True))
    for file in tmp.iterdir():
        with open(file, "rb") as handle:
            os.fsync(handle.fileno())
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    write_atomic(root / LATEST, name + "\n")
    for old in sorted(p for p in root.glob("step-*") if p.is_dir())[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The folder `latest` points at, or None when the run has no checkpoint yet."""
    pointer = Path(run_dir) / "checkpoints" / LATEST
    if not pointer.is_file():
        return None
    folder = pointer.parent / pointer.read_text().strip()
    return folder if (folder / STATE_FILE).is_file() else None


def read_meta(checkpoint: Path) -> dict:
    """The JSON metadata of a checkpoint folder."""
    return json.loads((Path(checkpoint) / META_FILE).read_text())


def load_checkpoint(checkpoint: Path, template: Any) -> tuple[Any, dict]:
    """(state shaped like `template`, meta) from a checkpoint folder."""
    from safetensors.numpy import load_file

    checkpoint = Path(checkpoint)
    if not (checkpoint / STATE_FILE).is_file():
        raise CheckpointError("no training state here", path=checkpoint)
    flat = load_file(str(checkpoint / STATE_FILE))
    return unflatten_state(template, flat, source=checkpoint), read_meta(checkpoint)

"""JAX process setup: the persistent compilation cache and the choice of device.

Call these before the first jitted function runs. Compiling the decode loop takes seconds on a
CPU; with the persistent cache a second `omrgemma` process loads the compiled executable from
`omrgemma.settings.cache_dir()/jax` instead of compiling again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import jax

from omrgemma.errors import UsageError
from omrgemma.settings import cache_dir

Platform = Literal["auto", "cpu", "gpu", "tpu"]


def enable_compilation_cache(directory: str | Path | None = None) -> Path:
    """Turns on JAX's persistent compilation cache in `directory` (default `cache_dir()/jax`).

    Every compiled executable is cached, however fast it compiled: the decode loop of a tiny test
    model compiles in well under JAX's default one-second threshold, yet a CLI run pays for many
    of those. Returns the directory used.
    """
    path = Path(directory) if directory is not None else cache_dir() / "jax"
    path.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path


def select_device(platform: Platform = "auto") -> jax.Device:
    """Makes the first device of `platform` JAX's default device and returns it.

    "auto" keeps JAX's own preference (a TPU or GPU when present, else the CPU). Asking for a
    platform that this machine or this jaxlib build lacks is a `UsageError` naming what exists.
    """
    if platform not in ("auto", "cpu", "gpu", "tpu"):
        raise UsageError(f"unknown device {platform!r}", hint="use one of auto, cpu, gpu, tpu")
    if platform == "auto":
        device = jax.devices()[0]
    else:
        try:
            devices = jax.devices(platform)
        except RuntimeError:
            devices = []
        if not devices:
            present = sorted({d.platform for d in jax.devices()})
            raise UsageError(
                f"no {platform} device is available (this machine has: {', '.join(present)})",
                hint="pass --device auto or --device cpu, or install a jaxlib built for it",
            )
        device = devices[0]
    jax.config.update("jax_default_device", device)
    return device

"""Run twice by test_jaxsetup.py, each time in a fresh process with OMRGEMMA_CACHE set: decodes
with the TINY model and prints JSON {"hits", "misses", "seconds"}: persistent-cache events
and the wall time of the first (compiling) `generate` call."""

from __future__ import annotations

import json
import time

from jax._src import monitoring  # the only public hook for the cache's hit/miss events

from omrgemma.jaxsetup import enable_compilation_cache


def main() -> None:
    enable_compilation_cache()
    events = {"hits": 0, "misses": 0}

    def count(event: str, **_) -> None:
        if event == "/jax/compilation_cache/cache_hits":
            events["hits"] += 1
        elif event == "/jax/compilation_cache/cache_misses":
            events["misses"] += 1

    monitoring.register_event_listener(count)
    from omrgemma.decode import generate

    from .tinymodel import NEVER, PROMPTS, make_tiny

    tiny = make_tiny()
    start = time.perf_counter()
    generate(tiny.params, tiny.config, tiny.images, PROMPTS, max_new_tokens=4, eos_id=NEVER)
    print(json.dumps({**events, "seconds": time.perf_counter() - start}))


if __name__ == "__main__":
    main()

"""Run by test_sharding.py in a subprocess with 8 fake CPU devices (XLA_FLAGS must be set
before JAX starts, hence the separate process). Prints one JSON object to stdout:
{"single": [...], "4x2": [...], "8x1": [...], "4x2_int8": [...], "int8": [...], "specs": {...}}
with the greedy tokens and log-probs of 8 rows per run.
"""

from __future__ import annotations

import json

import jax
import numpy as np

from omrgemma.decode import generate
from omrgemma.quantize import quantize
from omrgemma.sharding import make_mesh, shard_params

from .tinymodel import NEVER, PROMPTS, make_tiny


def main() -> None:
    assert len(jax.devices()) == 8, jax.devices()
    tiny = make_tiny()
    prompts = [PROMPTS[i % 3][: 2 + i] for i in range(8)]  # 8 rows, lengths 2..11
    images = np.concatenate([tiny.images, tiny.images, tiny.images[:2]])

    def run(params, mesh=None):
        results = generate(params, tiny.config, images, prompts, max_new_tokens=5, eos_id=NEVER,
                           mesh=mesh)  # fmt: skip
        return [[list(r.tokens), r.logprobs.tolist()] for r in results]

    out = {"single": run(tiny.params)}
    for data, model in ((4, 2), (8, 1)):
        mesh = make_mesh(data, model)
        out[f"{data}x{model}"] = run(shard_params(tiny.params, mesh), mesh)
    mesh = make_mesh(4, 2)
    sharded = shard_params(tiny.params, mesh)
    out["specs"] = {
        "q_einsum": str(sharded["llm"]["layers"]["attn"]["q_einsum"]["w"].sharding.spec),
        "linear": str(sharded["llm"]["layers"]["mlp"]["linear"].sharding.spec),
        "final_norm": str(sharded["llm"]["final_norm"]["scale"].sharding.spec),
    }
    q = quantize(tiny.params)
    out["int8"] = run(q)
    out["4x2_int8"] = run(shard_params(q, mesh), mesh)
    print(json.dumps(out))


if __name__ == "__main__":
    main()

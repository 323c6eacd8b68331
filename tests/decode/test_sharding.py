"""Sharded decoding equals single-device decoding (8 fake CPU devices in a subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from omrgemma.errors import UsageError
from omrgemma.settings import REPO_ROOT
from omrgemma.sharding import TENSOR_PARALLEL_RULES, make_mesh, spec_for


def test_specs_follow_the_rules_and_replicate_what_does_not_divide():
    sizes = {"data": 4, "model": 2}
    q = spec_for("llm/layers/attn/q_einsum/w", (2, 4, 32, 8), sizes, TENSOR_PARALLEL_RULES)
    assert q == P(None, "model", None, None)
    kv = "llm/layers/attn/kv_einsum/w"
    assert spec_for(kv, (2, 2, 2, 32, 8), sizes, TENSOR_PARALLEL_RULES) == P(
        None, None, "model", None, None
    )
    # one KV head cannot be split over two devices: replicated
    assert spec_for(kv, (2, 2, 1, 32, 8), sizes, TENSOR_PARALLEL_RULES) == P(
        None, None, None, None, None
    )
    # an int8 weight's scale follows its weight; the size-1 contracted axis stays whole
    scale = spec_for("llm/layers/mlp/linear/scale", (2, 1, 32), sizes, TENSOR_PARALLEL_RULES)
    assert scale == P(None, None, None)
    assert spec_for("llm/final_norm/scale", (32,), sizes, TENSOR_PARALLEL_RULES) == P()


def test_mesh_larger_than_the_machine_is_a_usage_error():
    with pytest.raises(UsageError, match="needs 64 devices"):
        make_mesh(8, 8)


def test_sharded_decoding_equals_one_device():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8",
               JAX_PLATFORMS="cpu")  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-m", "tests.decode.sharded_run"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["specs"] == {
        "q_einsum": "P(None, 'model', None, None)",
        "linear": "P(None, 'model', None)",
        "final_norm": "P()",
    }
    for reference, run in (("single", "4x2"), ("single", "8x1"), ("int8", "4x2_int8")):
        for (tokens, logprobs), (ref_tokens, ref_logprobs) in zip(
            out[run], out[reference], strict=True
        ):
            assert tokens == ref_tokens, run
            np.testing.assert_allclose(logprobs, ref_logprobs, atol=1e-4)
    assert len(out["single"]) == 8 and all(len(t) == 5 for t, _ in out["single"])

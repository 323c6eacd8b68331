"""The nine official PaliGemma 2 architectures: exact parameter counts (doc §1.1) and a
transformers name map that covers every parameter of the reference model with the right shape.

The reference models are built on torch's meta device: shapes only, no memory.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import replace

import pytest

from omrgemma.checkpoint import hf_canonical_name, hf_placements
from omrgemma.config import OFFICIAL, PRESETS, from_hf_config, to_hf_config
from omrgemma.nn import paligemma as pg
from omrgemma.nn.layers import flatten_dict

EXACT_PARAMS = {
    "paligemma2-3b-224": 3_032_094_960,
    "paligemma2-3b-448": 3_032_979_696,
    "paligemma2-3b-896": 3_036_518_640,
    "paligemma2-10b-224": 9_662_409_456,
    "paligemma2-10b-448": 9_663_294_192,
    "paligemma2-10b-896": 9_666_833_136,
    "paligemma2-28b-224": 27_650_192_112,
    "paligemma2-28b-448": 27_651_076_848,
    "paligemma2-28b-896": 27_654_615_792,
}


@pytest.mark.parametrize("config", OFFICIAL, ids=lambda c: c.name)
def test_exact_parameter_count(config):
    assert pg.count_params(pg.abstract_params(config)) == EXACT_PARAMS[config.name]


def test_registry_and_known_numbers():
    assert set(EXACT_PARAMS) <= set(PRESETS) and "tiny" in PRESETS
    c = PRESETS["paligemma2-28b-896"]
    assert c.text.query_pre_attn_scalar == 144 and c.text.head_dim == 128
    assert c.num_image_tokens == 4096 and PRESETS["paligemma2-3b-448"].num_image_tokens == 1024
    assert c.sliding_window is None  # big_vision default: global attention everywhere


@pytest.mark.parametrize("config", OFFICIAL, ids=lambda c: c.name)  # about 1 s in all
def test_name_map_covers_the_transformers_model(config):
    torch = pytest.importorskip("torch", reason="needs torch")
    transformers = pytest.importorskip("transformers", reason="needs transformers")
    hf_dict = to_hf_config(config)
    hf_config = transformers.PaliGemmaConfig(
        **{k: v for k, v in hf_dict.items() if k not in ("model_type", "architectures")}
    )
    with torch.device("meta"):
        model = transformers.PaliGemmaForConditionalGeneration(hf_config)
    theirs = {hf_canonical_name(n): tuple(p.shape) for n, p in model.named_parameters()}
    theirs.pop("lm_head.weight", None)  # tied to the embedding
    assert theirs["model.language_model.embed_tokens.weight"][0] == 257_216

    placements = hf_placements(config)
    assert Counter(pl.theirs for pl in placements) == dict.fromkeys(theirs, 1)  # each once
    abstract = flatten_dict(pg.abstract_params(config))
    covered = Counter()
    for pl in placements:
        sub_shape = abstract[pl.ours].shape[len(pl.index) :]
        assert pl.tf.shape_ok(theirs[pl.theirs], sub_shape), pl.theirs
        covered[pl.ours] += math.prod(sub_shape)
    assert covered == {name: math.prod(x.shape) for name, x in abstract.items()}

    # transformers' own serialisation of the config reads back as the same architecture.
    assert replace(from_hf_config(hf_config.to_dict()), name=config.name) == config


def test_hub_config_json_of_3b_pt_224():
    """The fields of google/paligemma2-3b-pt-224's config.json (doc §3.2), hub spelling."""
    hub = {
        "model_type": "paligemma", "image_token_index": 257152, "projection_dim": 2304,
        "torch_dtype": "bfloat16",
        "text_config": {
            "model_type": "gemma2", "hidden_size": 2304, "intermediate_size": 9216,
            "num_hidden_layers": 26, "num_attention_heads": 8, "num_key_value_heads": 4,
            "head_dim": 256, "query_pre_attn_scalar": 256, "sliding_window": 4096,
            "attn_logit_softcapping": 50.0, "final_logit_softcapping": 30.0,
            "vocab_size": 257216, "hidden_activation": "gelu_pytorch_tanh", "eos_token_id": [1, 107],
        },
        "vision_config": {
            "model_type": "siglip_vision_model", "hidden_size": 1152, "intermediate_size": 4304,
            "num_hidden_layers": 27, "num_attention_heads": 16, "patch_size": 14,
            "image_size": 224, "num_image_tokens": 256, "vision_use_head": False,
        },
    }  # fmt: skip
    config = from_hf_config(hub)
    assert replace(config, name=PRESETS["paligemma2-3b-224"].name) == PRESETS["paligemma2-3b-224"]
    assert from_hf_config(hub, keep_sliding_window=True).sliding_window == 4096

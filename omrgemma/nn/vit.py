"""SigLIP So400m/14 image encoder (no pooling) and the linear projector `img/head`.

Follows big_vision `models/vit.py` with `pool_type="none"`: patch conv with bias (a ph x pw
kernel and stride; square for the official models), learned position embedding added on the
row-major (gh, gw) patch grid, pre-LN blocks
`x += MHA(LN(x)); x += MLP(LN(x))`, a final `encoder_norm`, then `head` to the LLM width.
Parameter names are big_vision's (`img/...`); blocks are stacked on a leading depth axis.
Axis letters: see `layers.py` (W vision width, M vision MLP, N heads, H head dim).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import scipy.ndimage

from omrgemma.config import PaliGemmaConfig
from omrgemma.nn.layers import Params, fan_in, gelu, layer_norm, normal, ones, zeros


def param_specs(config: PaliGemmaConfig) -> dict:
    """Nested `ParamSpec`s of the `img` subtree."""
    v, (ph, pw), d = config.vision, config.patch_hw, config.text.width
    W, L, N, H, M = v.width, v.depth, v.num_heads, v.head_dim, v.mlp_dim

    def norm() -> dict:
        return {"scale": ones((L, W)), "bias": zeros((L, W))}

    def qkv() -> dict:
        return {"kernel": fan_in((L, W, N, H), W), "bias": zeros((L, N, H))}

    return {
        "embedding": {
            "kernel": fan_in((ph, pw, 3, W), ph * pw * 3),
            "bias": zeros((W,)),
        },
        # One row per patch, row-major over the (gh, gw) grid.
        "pos_embedding": normal((1, config.num_image_tokens, W), W**-0.5),
        "Transformer": {
            "encoderblock": {
                "LayerNorm_0": norm(),
                "LayerNorm_1": norm(),
                "MultiHeadDotProductAttention_0": {
                    "query": qkv(),
                    "key": qkv(),
                    "value": qkv(),
                    "out": {
                        "kernel": fan_in((L, N, H, W), W),
                        "bias": zeros((L, W)),
                    },
                },
                "MlpBlock_0": {
                    "Dense_0": {
                        "kernel": fan_in((L, W, M), W),
                        "bias": zeros((L, M)),
                    },
                    "Dense_1": {
                        "kernel": fan_in((L, M, W), M),
                        "bias": zeros((L, W)),
                    },
                },
            },
            "encoder_norm": {"scale": ones((W,)), "bias": zeros((W,))},
        },
        # Zero-initialised as in PaliGemma 1: image tokens start as no-ops for a pretrained LLM.
        "head": {"kernel": zeros((W, d)), "bias": zeros((d,))},
    }


def _block(x: jax.Array, p: Params, config: PaliGemmaConfig) -> jax.Array:
    """One pre-LN encoder block. x: [B, T, W]; p: this layer's slice of `encoderblock`."""
    v = config.vision
    cd = x.dtype
    attn = p["MultiHeadDotProductAttention_0"]

    def proj(y: jax.Array, name: str) -> jax.Array:
        k = attn[name]
        return jnp.einsum("BTW,WNH->BTNH", y, k["kernel"].astype(cd)) + k["bias"].astype(cd)

    y = layer_norm(x, p["LayerNorm_0"]["scale"], p["LayerNorm_0"]["bias"], v.norm_eps)
    q, k, val = proj(y, "query"), proj(y, "key"), proj(y, "value")
    logits = jnp.einsum("BTNH,BSNH->BNTS", q, k, preferred_element_type=jnp.float32)
    probs = jax.nn.softmax(logits * v.head_dim**-0.5, axis=-1).astype(cd)
    o = jnp.einsum("BNTS,BSNH->BTNH", probs, val)
    x = x + jnp.einsum("BTNH,NHW->BTW", o, attn["out"]["kernel"].astype(cd))
    x = x + attn["out"]["bias"].astype(cd)

    y = layer_norm(x, p["LayerNorm_1"]["scale"], p["LayerNorm_1"]["bias"], v.norm_eps)
    mlp = p["MlpBlock_0"]
    h = jnp.einsum("BTW,WM->BTM", y, mlp["Dense_0"]["kernel"].astype(cd))
    h = gelu(h + mlp["Dense_0"]["bias"].astype(cd))
    h = jnp.einsum("BTM,MW->BTW", h, mlp["Dense_1"]["kernel"].astype(cd))
    return x + h + mlp["Dense_1"]["bias"].astype(cd)


def encode(img: Params, config: PaliGemmaConfig, images: jax.Array) -> jax.Array:
    """images: f32[B, H, W, 3] in [-1, 1] ((H, W) = config.image_hw) -> [B, Nimg, D] in the
    compute dtype, Nimg = gh * gw = (H / ph) * (W / pw), D = LLM width."""
    cd = jnp.dtype(config.compute_dtype)
    h, w = config.image_hw
    if images.shape[1:] != (h, w, 3):
        raise ValueError(f"images must be [B, {h}, {w}, 3], got {tuple(images.shape)}")
    emb = img["embedding"]
    x = jax.lax.conv_general_dilated(
        images.astype(cd),
        emb["kernel"].astype(cd),
        window_strides=config.patch_hw,
        padding="VALID",
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
    )
    x = x + emb["bias"].astype(cd)
    x = x.reshape(x.shape[0], -1, x.shape[-1])  # row-major (gh, gw) grid
    x = x + img["pos_embedding"].astype(cd)

    def step(x: jax.Array, layer: Params) -> tuple[jax.Array, None]:
        return _block(x, layer, config), None

    x, _ = jax.lax.scan(step, x, img["Transformer"]["encoderblock"])
    norm = img["Transformer"]["encoder_norm"]
    x = layer_norm(x, norm["scale"], norm["bias"], config.vision.norm_eps)
    head = img["head"]
    return jnp.einsum("BTW,WD->BTD", x, head["kernel"].astype(cd)) + head["bias"].astype(cd)


def resample_posemb(
    posemb: np.ndarray,
    new_grid: int | tuple[int, int],
    old_grid: tuple[int, int] | None = None,
) -> np.ndarray:
    """Resize a learned position embedding [1, gh*gw, W] to [1, gh'*gw', W] on its patch grid.

    new_grid: (gh', gw'), or a token count of a square grid. old_grid: (gh, gw) of `posemb`;
    None means square (every official checkpoint). Bilinear with aligned corners, exactly
    big_vision's `scipy.ndimage.zoom(grid, (gh'/gh, gw'/gw, 1), order=1)`; each axis is
    zoomed on its own, so a 16x16 table becomes a 4x32 one for a wide single-staff input.
    """
    posemb = np.asarray(posemb)
    old_n = posemb.shape[1]
    if old_grid is None:
        side = round(old_n**0.5)
        if side**2 != old_n:
            raise ValueError(f"a {old_n}-row position table is not a square grid: pass old_grid")
        old_grid = (side, side)
    if isinstance(new_grid, int):
        side = round(new_grid**0.5)
        if side**2 != new_grid:
            raise ValueError(f"position embeddings must form square grids, got {old_n} -> "
                             f"{new_grid}: pass the new grid as (rows, columns)")  # fmt: skip
        new_grid = (side, side)
    if old_grid[0] * old_grid[1] != old_n:
        raise ValueError(f"a {old_n}-row position table is not a {old_grid} grid")
    if tuple(old_grid) == tuple(new_grid):
        return posemb
    grid = posemb.reshape(*old_grid, -1).astype(np.float32)
    zoom = (new_grid[0] / old_grid[0], new_grid[1] / old_grid[1], 1)
    out = scipy.ndimage.zoom(grid, zoom, order=1)
    assert out.shape[:2] == tuple(new_grid), (out.shape, new_grid)  # zoom rounds the sizes
    return out.reshape(1, new_grid[0] * new_grid[1], -1).astype(posemb.dtype)

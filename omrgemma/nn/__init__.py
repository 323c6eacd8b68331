"""The PaliGemma 2 model as plain JAX functions over a big_vision-layout parameter dict.

`vit.py` (SigLIP encoder), `gemma.py` (Gemma 2 decoder, KV cache), `paligemma.py` (the public
API gluing them: `init_params`, `encode_image`, `embed_tokens`, `forward`, ...), `layers.py`
(norms, RoPE, soft-cap, parameter specs).
"""

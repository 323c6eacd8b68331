"""Decoding speed: our JAX engine against transformers' `generate()` on the same random weights.

    .venv/bin/python benchmarks/decode.py [--new-tokens 64] [--repeat 3] [--real-size]

Small comparison (CPU, float32, greedy): a random "small but not trivial" PaliGemma (below:
ViT 4 x 256 at 224 px / patch 14 = 256 image tokens, Gemma 4 x 256 with 4 heads / 2 KV heads,
vocabulary 2048) is built in transformers, perturbed so that no weight is trivial, saved with
`save_pretrained` and loaded into ours with `omrgemma.checkpoint.load_hf`, so both run identical
weights. Both decode the same images and 8-token prompts greedily, without EOS, and must emit
the same tokens. Reported, as medians of --repeat runs after a warm-up (our compile excluded):
  prefill     generate() of 1 new token at batch 1 (ViT + prefill + one choice)
  decode      (new_tokens - 1) / (t(new_tokens) - t(1)) per row: the per-token loop alone
  throughput  batch x new_tokens / t(new_tokens): what a batch job sees, prefill included
Then int8 weight-only quantisation: its speed, and its quality against float32 on the TINY and
the small model (max/mean |logit difference| teacher-forced on the float32 greedy output, and
how many greedy tokens agree).

--real-size adds the PaliGemma 2 3B preset at 224 px with random bf16 weights, batch 1, prefill
+ 32 tokens, float32 compute vs int8 weights, each in its own process to report its peak RSS.
Results are appended to benchmarks/results/decode.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "decode.md"
PROMPT_LEN = 8


def small_config():
    from omrgemma.config import PaliGemmaConfig, TextConfig, VisionConfig

    return PaliGemmaConfig(
        name="bench-small",
        vision=VisionConfig(width=256, depth=4, mlp_dim=1024, num_heads=4),
        text=TextConfig(
            width=256, depth=4, num_heads=4, num_kv_heads=2, head_dim=64, mlp_dim=1024,
            query_pre_attn_scalar=64,
        ),
        image_size=224,
        patch_size=14,
        vocab_size=2048,
    )  # fmt: skip


def build_pair(config, directory: Path, threads: int = 1):
    """The transformers model and our params, with identical random weights."""
    import torch
    import transformers

    torch.set_num_threads(threads)
    from omrgemma.checkpoint import load_hf
    from omrgemma.config import to_hf_config

    hf_dict = to_hf_config(config)
    hf_dict["dtype"] = "float32"
    hf_config = transformers.PaliGemmaConfig(
        **{k: v for k, v in hf_dict.items() if k not in ("model_type", "architectures")}
    )
    torch.manual_seed(0)
    model = transformers.PaliGemmaForConditionalGeneration(hf_config).eval()
    with torch.no_grad():
        for p in model.parameters():  # norms and the projector start at 0/1: perturb all
            p.add_(0.2 * torch.randn_like(p))
    model.generation_config.eos_token_id = None  # both run to max_new_tokens
    model.generation_config.pad_token_id = 0
    model.save_pretrained(directory)
    return model, load_hf(directory).params


def inputs(config, batch: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    images = rng.uniform(-1, 1, (batch, config.image_size, config.image_size, 3))
    body = rng.integers(3, config.vocab_size, (batch, PROMPT_LEN - 2))
    prompts = np.concatenate([np.full((batch, 1), 2), body, np.full((batch, 1), 108)], 1)
    return images.astype(np.float32), prompts.astype(np.int32)


def hf_generate(model, config, images, prompts, new_tokens: int) -> np.ndarray:
    import torch

    batch = len(prompts)
    image_ids = np.full((batch, config.num_image_tokens), config.vocab_size)  # <image>
    ids = torch.tensor(np.concatenate([image_ids, prompts], 1))
    with torch.inference_mode():
        out = model.generate(
            input_ids=ids, pixel_values=torch.tensor(images).permute(0, 3, 1, 2),
            attention_mask=torch.ones_like(ids), token_type_ids=torch.zeros_like(ids),
            max_new_tokens=new_tokens, do_sample=False,
            # rows past our vocabulary (<image> and transformers' padding) never win
            suppress_tokens=list(range(config.vocab_size, model.config.text_config.vocab_size)),
        )  # fmt: skip
    return out[:, ids.shape[1] :].numpy()


def ours_generate(params, config, images, prompts, new_tokens: int) -> np.ndarray:
    from omrgemma.decode import generate

    results = generate(
        params, config, images, prompts.tolist(), max_new_tokens=new_tokens,
        eos_id=config.vocab_size + 1,  # never emitted: run to max_new_tokens like transformers
    )  # fmt: skip
    return np.asarray([r.tokens for r in results])


def median_seconds(function, repeat: int) -> float:
    function()  # warm-up (and, for ours, the compile)
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        function()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def speed(run, batch: int, new_tokens: int, repeat: int) -> dict[str, float]:
    """run(batch, new_tokens) -> tokens; the three figures of the module docstring."""
    one = median_seconds(lambda: run(batch, 1), repeat)
    full = median_seconds(lambda: run(batch, new_tokens), repeat)
    return {
        "prefill_s": one,
        "decode_tok_s": batch * (new_tokens - 1) / max(full - one, 1e-9),
        "throughput_tok_s": batch * new_tokens / full,
        "total_s": full,
    }


def int8_quality(params, config, images, prompts, new_tokens: int, vit: bool = True):
    """Logit error of int8 vs float32, teacher-forced on the float32 greedy output, and the
    agreement of the two greedy outputs (fraction of equal tokens, mean length of the equal
    prefix)."""
    import jax.numpy as jnp

    from omrgemma.nn import paligemma as pg
    from omrgemma.quantize import dequantize, quantize

    q = quantize(params, vit=vit)
    exact_tokens = ours_generate(params, config, images, prompts, new_tokens)
    int8_tokens = ours_generate(q, config, images, prompts, new_tokens)
    text = jnp.asarray(np.concatenate([prompts, exact_tokens], 1))
    mask_ar = jnp.asarray(np.concatenate([np.zeros_like(prompts), np.ones_like(exact_tokens)], 1))
    exact = np.asarray(pg.prefix_lm_logits(params, config, images, text, mask_ar))
    approx = np.asarray(pg.prefix_lm_logits(dequantize(q), config, images, text, mask_ar))
    diff = np.abs(approx - exact)
    same = exact_tokens == int8_tokens
    prefix = np.where(same.all(1), same.shape[1], np.argmin(same, axis=1))
    return {
        "logit_std": float(exact.std()),
        "max_abs_diff": float(diff.max()),
        "mean_abs_diff": float(diff.mean()),
        "token_agreement": float(same.mean()),
        "equal_prefix": float(prefix.mean()),
    }


def small_comparison(args) -> list[str]:
    import jax

    from omrgemma.config import TINY
    from omrgemma.nn import paligemma as pg
    from omrgemma.quantize import quantize

    config = small_config()
    with tempfile.TemporaryDirectory() as tmp:
        model, params = build_pair(config, Path(tmp), args.threads)
    print(f"built {config.name}: {pg.count_params(params):,} params", file=sys.stderr)
    images8, prompts8 = inputs(config, 8)

    theirs = hf_generate(model, config, images8, prompts8, args.new_tokens)
    ours = ours_generate(params, config, images8, prompts8, args.new_tokens)
    agree = float((theirs == ours).mean())

    def run_ours(p):
        return lambda b, n: ours_generate(p, config, images8[:b], prompts8[:b], n)

    def run_hf(b, n):
        return hf_generate(model, config, images8[:b], prompts8[:b], n)

    q = quantize(params)
    rows = {}
    for batch in (1, 8):
        rows[("transformers", batch)] = speed(run_hf, batch, args.new_tokens, args.repeat)
        rows[("ours f32", batch)] = speed(run_ours(params), batch, args.new_tokens, args.repeat)
        rows[("ours int8", batch)] = speed(run_ours(q), batch, args.new_tokens, args.repeat)
        print(json.dumps({f"{k[0]} b{k[1]}": v for k, v in rows.items()}), file=sys.stderr)

    tiny_params = pg.init_params(TINY, jax.random.key(0))
    tiny_params["img"]["head"]["kernel"] = 0.5 * jax.random.normal(
        jax.random.key(1), tiny_params["img"]["head"]["kernel"].shape
    )
    tiny_images, tiny_prompts = inputs(TINY, 8, seed=1)
    # The transformers-perturbed weights (std ~0.2 everywhere) make the ViT chaotic: it
    # amplifies any weight error, so the LLM-only row and a fan-in-scaled init are shown too.
    fan_in_params = pg.init_params(config, jax.random.key(0))
    fan_in_params["img"]["head"]["kernel"] = (
        jax.random.normal(jax.random.key(1), fan_in_params["img"]["head"]["kernel"].shape)
        * config.vision.width**-0.5
    )
    n = args.new_tokens
    quality = {
        "TINY, fan-in init": int8_quality(tiny_params, TINY, tiny_images, tiny_prompts, 32),
        f"{config.name}, transformers weights": int8_quality(params, config, images8, prompts8, n),
        f"{config.name}, transformers weights, LLM only": int8_quality(
            params, config, images8, prompts8, n, vit=False
        ),
        f"{config.name}, fan-in init": int8_quality(fan_in_params, config, images8, prompts8, n),
    }

    lines = [
        f"## Small random model vs transformers {_version('transformers')} "
        f"(torch {_version('torch')}), CPU float32, greedy",
        "",
        f"Config: ViT {config.vision.depth} x {config.vision.width} at {config.image_size} px / "
        f"patch {config.patch_size} ({config.num_image_tokens} image tokens); Gemma "
        f"{config.text.depth} x {config.text.width}, {config.text.num_heads} heads / "
        f"{config.text.num_kv_heads} KV, MLP {config.text.mlp_dim}; vocabulary "
        f"{config.vocab_size}; {pg.count_params(params):,} params. Prompt {PROMPT_LEN} tokens, "
        f"{args.new_tokens} new tokens, median of {args.repeat} after a warm-up, "
        f"{args.threads} CPU thread(s) for each engine. "
        f"Command: `{' '.join(sys.argv)}`.",
        "",
        f"Same greedy tokens as transformers (batch 8, {args.new_tokens} tokens): "
        f"{100 * agree:.1f} % of positions.",
        "",
        "| engine | batch | prefill (s) | decode tok/s | throughput tok/s | total (s) |",
        "|---|---|---|---|---|---|",
    ]
    for (name, batch), r in rows.items():
        lines.append(
            f"| {name} | {batch} | {r['prefill_s']:.3f} | {r['decode_tok_s']:.1f} | "
            f"{r['throughput_tok_s']:.1f} | {r['total_s']:.2f} |"
        )
    lines += ["", "Ratios, ours / transformers:", ""]
    lines += [
        "| engine | batch | prefill speed-up | decode | throughput |",
        "|---|---|---|---|---|",
    ]
    for name in ("ours f32", "ours int8"):
        for batch in (1, 8):
            r, h = rows[(name, batch)], rows[("transformers", batch)]
            lines.append(
                f"| {name} | {batch} | {h['prefill_s'] / r['prefill_s']:.2f}x | "
                f"{r['decode_tok_s'] / h['decode_tok_s']:.2f}x | "
                f"{r['throughput_tok_s'] / h['throughput_tok_s']:.2f}x |"
            )
    lines += [
        "",
        "int8 weight-only quality (teacher-forced on the float32 greedy output, 8 rows):",
        "",
        "| model | logit std | max abs diff | mean abs diff | greedy tokens equal | "
        "mean equal prefix |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in quality.items():
        lines.append(
            f"| {name} | {r['logit_std']:.3f} | {r['max_abs_diff']:.4f} | "
            f"{r['mean_abs_diff']:.5f} | {100 * r['token_agreement']:.1f} % | "
            f"{r['equal_prefix']:.1f} |"
        )
    return lines


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


# ---- real size: one process per variant, so ru_maxrss is that variant's peak ------------------


def real_size_config(depth: int | None):
    """The 3B preset at 224 px, optionally with only `depth` LLM and ViT layers (same widths)."""
    from omrgemma.config import PALIGEMMA2_3B_224

    if depth is None:
        return PALIGEMMA2_3B_224
    return replace(
        PALIGEMMA2_3B_224,
        text=replace(PALIGEMMA2_3B_224.text, depth=depth),
        vision=replace(PALIGEMMA2_3B_224.vision, depth=depth),
    )


def real_size_child(variant: str, new_tokens: int, depth: int | None) -> None:
    """Runs in a subprocess: random bf16 3B weights, batch 1, prints one JSON line."""
    import jax
    import ml_dtypes

    from omrgemma.decode import generate
    from omrgemma.nn import paligemma as pg
    from omrgemma.quantize import nbytes, quantize

    config = real_size_config(depth)
    rng = np.random.default_rng(0)

    def random_leaf(leaf):  # one layer at a time: no float32 copy of a whole stacked tensor
        out = np.empty(leaf.shape, ml_dtypes.bfloat16)
        for i in range(leaf.shape[0]):
            fan_in = leaf.shape[-2] if leaf.ndim > 1 else 1
            part = rng.standard_normal(leaf.shape[1:], np.float32) * fan_in**-0.5
            out[i] = part.astype(ml_dtypes.bfloat16)
        return jax.numpy.asarray(out)

    began = time.perf_counter()
    params = jax.tree.map(random_leaf, pg.abstract_params(config))
    if variant == "int8":
        params = quantize(params)
    setup = time.perf_counter() - began
    images, prompts = inputs(config, 1)
    times = {}
    for n in (1, new_tokens):
        began = time.perf_counter()
        generate(params, config, images, prompts.tolist(), max_new_tokens=n, eos_id=10**6)
        times[f"first_{n}"] = time.perf_counter() - began  # compile + run
        began = time.perf_counter()
        generate(params, config, images, prompts.tolist(), max_new_tokens=n, eos_id=10**6)
        times[f"run_{n}"] = time.perf_counter() - began
    print(json.dumps({
        "variant": variant,
        "weights_gb": nbytes(params) / 1e9,
        "setup_s": setup,
        **times,
        "decode_tok_s": (new_tokens - 1) / (times[f"run_{new_tokens}"] - times["run_1"]),
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
    }))  # fmt: skip


def real_size(args) -> list[str]:
    depth = "all" if args.real_depth is None else args.real_depth
    lines = [
        "## Real size: PaliGemma 2 3B at 224 px, random bf16 weights, batch 1, CPU",
        "",
        f"Layers: {depth} (LLM and ViT; widths, heads and vocabulary as the preset).",
        "",
        f"Prefill (256 image + {PROMPT_LEN} prompt tokens) + {args.real_tokens} new tokens, "
        "float32 activations; `bf16` keeps the bf16 weights and casts them inside the compiled "
        "loop, `int8` quantises the LLM and ViT matrices (the embedding stays bf16). Each "
        "variant runs in its own process (`nice -n 10`); peak RSS is that process's ru_maxrss.",
        "",
        "| weights | weight GB | compile+run 1 tok (s) | prefill (s) | "
        f"compile+run {args.real_tokens} (s) | run {args.real_tokens} (s) | decode tok/s | "
        "peak RSS GB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for variant in args.variants.split(","):
        proc = subprocess.run(
            ["nice", "-n", "10", sys.executable, __file__, "--child", variant,
             "--real-tokens", str(args.real_tokens)]
            + ([] if args.real_depth is None else ["--real-depth", str(args.real_depth)]),
            capture_output=True, text=True, env=dict(os.environ, JAX_PLATFORMS="cpu"),
        )  # fmt: skip
        if proc.returncode:
            last = (proc.stderr.strip().splitlines() or ["no message"])[-1]
            lines.append(f"| {variant} | failed (exit {proc.returncode}): {last} |")
            continue
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        n = args.real_tokens
        lines.append(
            f"| {variant} | {r['weights_gb']:.2f} | {r['first_1']:.1f} | {r['run_1']:.1f} | "
            f"{r[f'first_{n}']:.1f} | {r[f'run_{n}']:.1f} | {r['decode_tok_s']:.2f} | "
            f"{r['peak_rss_gb']:.1f} |"
        )
        print(lines[-1], file=sys.stderr)
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--real-size", action="store_true", help="add the 3B row (heavy)")
    parser.add_argument("--only-real-size", action="store_true", help="skip the small comparison")
    parser.add_argument("--real-tokens", type=int, default=32)
    parser.add_argument(
        "--real-depth", type=int, default=None, help="fewer layers in the real-size row"
    )
    parser.add_argument("--variants", default="bf16,int8", help="real-size variants to run")
    parser.add_argument(
        "--threads", type=int, default=1,
        help="CPU threads for torch and XLA alike (1: both run single-threaded)",
    )  # fmt: skip
    parser.add_argument("--child", choices=("bf16", "int8"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.threads == 1:  # before JAX starts: XLA reads its flags once
        os.environ["XLA_FLAGS"] = (
            os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false"
        )
    if args.child:
        real_size_child(args.child, args.real_tokens, args.real_depth)
        return 0
    lines = [f"# Decoding benchmark ({time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} CPUs)", ""]
    if not args.only_real_size:
        lines += small_comparison(args) + [""]
    if args.real_size or args.only_real_size:
        lines += real_size(args) + [""]
    text = "\n".join(lines)
    print(text)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with RESULTS.open("a", encoding="utf-8") as f:
        f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

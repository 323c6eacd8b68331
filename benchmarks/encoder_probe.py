"""Can the vision encoder learn to spell a staff? CTC-only training of the ViT, per patch shape.

The small model's decoder learns kern as a language long before it reads the image (the image
gap of docs/cpu-learning-curve.md and models/omrgemma-small). This probe isolates the encoder:
a ViT of the small preset's size, its projector and the training-only CTC head
(`omrgemma.ctc`) are trained on CTC alone, no decoder, for a fixed number of minutes per patch
shape, on the same pre-rendered examples; every few steps the held-out CTC loss and the greedy
CTC piece error rate (edit distance of the collapsed best path to the inked target pieces) are
measured. A patch shape under which the encoder learns to spell quickly is the one to train
the full model with.

    python benchmarks/encoder_probe.py runs/staff-drop --patches 16x16 64x8 --minutes 8

The run folder gives the pool, the held-out slice, the tokenizer and the example options; the
rendered examples are cached in `--data` (npz) so every patch shape sees the same images.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _make(args):
    maker, seed = args
    return maker(np.random.default_rng(seed))


def render_set(run_dir: Path, n_train: int, out: Path) -> None:
    """Render `n_train` augmented training examples and the clean held-out slice into `out`."""
    from omrgemma.data.kern_examples import KernExamples
    from omrgemma.train_run import SentencePieceEncoder, data_settings, load_run

    run = load_run(run_dir)
    options = data_settings(run).examples
    pool = tuple(json.loads(line) for line in (run_dir / "pool.jsonl").open())
    heldout = [json.loads(line) for line in (run_dir / "heldout.jsonl").open()]
    encoder = SentencePieceEncoder((run_dir / "tokenizer.model").read_bytes())
    clean = dataclasses.replace(options, camera_probability=0.0, scan_probability=0.0)
    jobs = [(KernExamples(pool=pool, options=options), (11, i)) for i in range(n_train)]
    jobs += [(KernExamples(pool=(k,), options=clean), (7, i)) for i, k in enumerate(heldout)]
    with multiprocessing.Pool(2) as workers:
        made = workers.map(_make, jobs, chunksize=32)
    arrays = {}
    for name, part in (("train", made[:n_train]), ("heldout", made[n_train:])):
        part = [m for m in part if m is not None]
        ids = [encoder(text) for _, text in part]
        tokens = np.zeros((len(ids), max(map(len, ids))), np.int32)
        for r, t in enumerate(ids):
            tokens[r, : len(t)] = t
        arrays[f"{name}_images"] = np.stack([img for img, _ in part])
        arrays[f"{name}_tokens"] = tokens
    np.savez_compressed(out, **arrays)


def probe(run_dir: Path, data: dict, patch: tuple[int, int], minutes: float, args) -> list[dict]:
    import jax
    import jax.numpy as jnp
    import optax

    from omrgemma import ctc as ctc_head
    from omrgemma.config import PaliGemmaConfig
    from omrgemma.kerntok import load_processor
    from omrgemma.metrics import levenshtein
    from omrgemma.nn import paligemma as pg
    from omrgemma.train import images_to_model
    from omrgemma.train_run import load_run

    run = load_run(run_dir)
    config = PaliGemmaConfig.from_dict(run["model"])
    config = dataclasses.replace(config, image_size=(64, 512), patch_size=patch)
    sp = load_processor((run_dir / "tokenizer.model").read_bytes())
    pieces = [sp.id_to_piece(i) for i in range(sp.get_piece_size())]
    settings = ctc_head.CtcSettings(
        weight=1.0,
        upsample=max(1, args.upsample * patch[1] // 16),
        skip=ctc_head.invisible_ids(pieces, sp.eos_id()),
    )
    rng = jax.random.PRNGKey(0)
    full = pg.init_params(config, rng)
    kernel = full["img"]["head"]["kernel"]
    head = dict(
        full["img"]["head"],
        kernel=jax.random.normal(rng, kernel.shape, kernel.dtype) / kernel.shape[0] ** 0.5,
    )
    params = {
        "img": dict(full["img"], head=head),
        "ctc": ctc_head.init_head(config, settings, jax.random.fold_in(rng, 2)),
    }
    n_params = sum(x.size for x in jax.tree.leaves(params))
    schedule = optax.warmup_constant_schedule(0.0, args.lr, 50)
    tx = optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(schedule, b1=0.9, b2=0.98))
    opt_state = tx.init(params)

    def weights_of(tokens):
        return (tokens > 0).astype(jnp.float32)  # pad id 0; <eos> is in `skip`

    def loss(p, images, tokens):
        frames = ctc_head.frame_logits(
            p["ctc"], config, settings, pg.encode_image(p, config, images_to_model(images))
        )
        return ctc_head.ctc_loss(frames, tokens, weights_of(tokens), settings)

    @jax.jit
    def step(p, o, images, tokens):
        value, grads = jax.value_and_grad(loss)(p, images, tokens)
        updates, o = tx.update(grads, o, p)
        return optax.apply_updates(p, updates), o, value

    def evaluate(p):
        images, tokens = data["heldout_images"], data["heldout_tokens"]
        losses, errors, total = [], 0, 0
        for i in range(0, len(images), 32):
            im, tk = images[i : i + 32], tokens[i : i + 32]
            losses.append(float(loss(p, im, tk)) * len(im))
            frames = ctc_head.frame_logits(
                p["ctc"], config, settings, pg.encode_image(p, config, images_to_model(im))
            )
            wanted = ctc_head.target_pieces(tk, np.asarray(tk > 0, np.float32), settings)
            for hyp, ref in zip(ctc_head.best_paths(frames, settings.blank), wanted, strict=True):
                errors += levenshtein(hyp, ref)
                total += len(ref)
        return sum(losses) / len(images), 100.0 * errors / max(total, 1)

    order = np.random.default_rng(0).permutation(len(data["train_images"]))
    rows, t0, n, history = [], time.monotonic(), 0, []
    next_eval, eval_s = 0.0, 0.0
    while True:
        elapsed = (time.monotonic() - t0 - eval_s) / 60  # training minutes, evaluation excluded
        if elapsed >= next_eval or elapsed >= minutes:
            e0 = time.monotonic()
            heldout_loss, per = evaluate(params)
            eval_s += time.monotonic() - e0
            recent = float(np.mean(history[-20:])) if history else float("nan")
            rows.append({"patch": f"{patch[0]}x{patch[1]}", "minutes": round(elapsed, 2),
                         "samples": n, "train_ctc": round(recent, 3),
                         "heldout_ctc": round(heldout_loss, 3), "heldout_per": round(per, 1)})  # fmt: skip
            print(json.dumps(rows[-1]), flush=True)
            next_eval += args.eval_every
            if elapsed >= minutes:
                break
        pick = order[np.arange(n, n + args.batch) % len(order)]
        params, opt_state, value = step(
            params, opt_state, data["train_images"][pick], data["train_tokens"][pick]
        )
        history.append(float(value))
        n += args.batch
    rows[-1]["params"] = n_params
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--patches", nargs="+", default=["16x16", "64x8"])
    parser.add_argument("--minutes", type=float, default=8.0)
    parser.add_argument("--eval-every", type=float, default=2.0)
    parser.add_argument("--examples", type=int, default=6144)
    parser.add_argument("--data", type=Path, default=Path("runs/probe-data.npz"))
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--upsample", type=int, default=4, help="CTC frames per 16 px of width")
    parser.add_argument("--out", type=Path, default=None, help="append the rows here (jsonl)")
    args = parser.parse_args(argv)
    if not args.data.is_file():
        t0 = time.monotonic()
        render_set(args.run, args.examples, args.data)
        print(f"rendered in {time.monotonic() - t0:.0f} s", flush=True)
    with np.load(args.data) as npz:
        data = {k: npz[k] for k in npz.files}
    for text in args.patches:
        h, w = (int(x) for x in text.split("x"))
        rows = probe(args.run, data, (h, w), args.minutes, args)
        if args.out:
            with args.out.open("a") as f:
                for row in rows:
                    f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()

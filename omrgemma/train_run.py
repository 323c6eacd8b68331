"""A training run on disk: prepare it once, train (and resume) it, export it as a model directory.

    RUN/run.json          what the run is: model config, data, tokenizer, hyper-parameters
    RUN/tokenizer.model   the kern tokenizer trained on this run's training snippets
    RUN/pool.jsonl        the training snippet pool (training movements only)
    RUN/heldout.jsonl     a fixed held-out slice for periodic evaluation (held-out movements)
    RUN/log.jsonl         one line per logged step and per evaluation
    RUN/checkpoints/      atomic checkpoints (see `omrgemma.train_state`)
    RUN/shards/           the rendered-shard cache

`prepare_run` writes the first four; `run_training` builds the model, data stream and evaluator
from them, so `--resume` needs nothing but the folder; `export_model` writes the latest
checkpoint as `config.json + model.safetensors (bfloat16) + tokenizer.model + README.md`.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from omrgemma.config import PaliGemmaConfig, TextConfig, VisionConfig
from omrgemma.ctc import CtcSettings
from omrgemma.data.kern_examples import ExampleOptions
from omrgemma.data.sequence import SpecialIds
from omrgemma.errors import UsageError
from omrgemma.lora import LoraSettings

# Single-staff sources (monophonic songs, Polish and Chopin single-staff parts) and grand-staff
# piano sources: the collection names of `omrgemma.data.split`.
DATASETS: dict[str, tuple[str, ...]] = {
    "single": (
        "mono/creighton-nova-scotia", "mono/densmore-teton-sioux", "mono/foster-songs",
        "mono/schubert-songs", "polish-scores/1-staff", "chopin-first-editions/1-staff",
    ),
    "piano": (
        "piano/beethoven-piano-sonatas", "piano/joplin", "piano/scarlatti-keyboard-sonatas",
        "piano/chopin-preludes", "piano/hummel-preludes", "polish-scores/2-staff",
        "chopin-first-editions/2-staff",
    ),
}  # fmt: skip
# Each staff of the piano systems on its own (`omrgemma.kern.staves.split_staves`), for a
# staff-level model: the same collections and training movements as "piano".
DATASETS["piano-staves"] = DATASETS["piano"]
# Both kinds, every staff on its own: a staff-level model learning piano staves without
# forgetting single-staff music (the pool is about a sixth single-staff snippets).
DATASETS["staves"] = DATASETS["single"] + DATASETS["piano"]
STAFF_DATASETS = frozenset({"piano-staves", "staves"})

# The shipped CPU model: 192 px square input, 16 px patches (144 image tokens), a 4-layer
# SigLIP-style encoder and a 4-layer Gemma-2-style decoder over a 512-piece kern vocabulary.
SMALL = PaliGemmaConfig(
    name="omrgemma-small",
    vision=VisionConfig(width=256, depth=4, mlp_dim=1024, num_heads=4),
    text=TextConfig(
        width=256, depth=4, num_heads=4, num_kv_heads=2, head_dim=64, mlp_dim=1024,
        query_pre_attn_scalar=64,
    ),
    image_size=192,
    patch_size=16,
    vocab_size=512,
)  # fmt: skip
# The same networks reading one staff at its own shape: 64 x 512 px, 16 px patches -> a 4 x 32
# grid (128 image tokens, fewer than SMALL's 144), with 2.7x SMALL's pixels along the staff, so
# a wide system keeps a few pixels between staff lines instead of being shrunk into a square.
SMALL_STAFF = dataclasses.replace(SMALL, name="omrgemma-small-staff", image_size=(64, 512))
PRESETS = {"small": SMALL, "small-staff": SMALL_STAFF}


@dataclass(frozen=True, kw_only=True)
class DataSettings:
    """Where examples come from and how they are cut and streamed."""

    dataset: str = "single"
    measures: tuple[int, int] = (1, 2)
    cuts: int = 2
    seed: int = 0
    shard_size: int = 256
    text_buckets: tuple[int, ...] = (64, 128, 256)
    heldout_examples: int = 64
    examples: ExampleOptions = field(default_factory=ExampleOptions)


def text_buckets(max_tokens: int) -> tuple[int, ...]:
    """Padded kern lengths of a stream whose longest example has `max_tokens` tokens.

    Batches are padded to the smallest bucket that holds them: 64, 128, 256, then `max_tokens`.
    """
    return tuple(b for b in (64, 128, 256) if b < max_tokens) + (max_tokens,)


def _read_jsonl(path: Path) -> list:
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def _write_jsonl(path: Path, rows: list) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


# ---------------------------------------------------------------------------------------------


def prepare_run(
    run_dir: Path,
    *,
    model: PaliGemmaConfig,
    data: DataSettings,
    train: Any,
    data_dir: Path,
    vocab_size: int | None = None,
    init_from: str | None = None,
    tokenizer: str = "checkpoint",
    ctc: CtcSettings | None = None,
    lora: LoraSettings | None = None,
    eval_sets: dict[str, int] | None = None,
) -> None:
    """Build the snippet pool, the tokenizer and the held-out slice; write run.json.

    Fine-tuning (`init_from`) keeps the checkpoint's tokenizer (`tokenizer="checkpoint"`; the
    embedding grows if it has more pieces than rows) or trains our kern tokenizer
    (`tokenizer="kern"`) and replaces the embedding rows. With `lora` the base weights stay
    frozen; an embedding with fresh rows is then trained in full.
    """
    from omrgemma.data import split
    from omrgemma.data.kern_examples import build_snippet_pool
    from omrgemma.kerntok import KernTokenizerSpec, train_kern_tokenizer

    run_dir = Path(run_dir)
    given_vocab = model.vocab_size
    if (run_dir / "run.json").exists():
        raise UsageError("the run folder is already prepared", path=run_dir, hint="add --resume")
    if data.dataset not in DATASETS:
        raise UsageError(f"unknown dataset {data.dataset!r}", hint=f"one of {sorted(DATASETS)}")
    run_dir.mkdir(parents=True, exist_ok=True)
    own_tokenizer = init_from is None or tokenizer == "kern"
    if init_from is not None and own_tokenizer and not vocab_size:
        vocab_size = 512  # a kern vocabulary, not the checkpoint's 257k rows
    if vocab_size and own_tokenizer:
        model = dataclasses.replace(model, vocab_size=vocab_size)  # one embedding row per piece
    # Examples are made at the model's input size.
    examples = dataclasses.replace(data.examples, image_size=model.image_size)
    data = dataclasses.replace(data, examples=examples)
    collections = list(DATASETS[data.dataset])
    train_files = split.train_files(data_dir, collections)
    split.assert_not_heldout(train_files)
    staves = data.dataset in STAFF_DATASETS
    pool = build_snippet_pool(
        train_files, measures=data.measures, cuts=data.cuts, seed=data.seed, staves=staves
    )
    _write_jsonl(run_dir / "pool.jsonl", pool)
    held = build_snippet_pool(
        split.test_files(data_dir, collections),
        measures=data.measures,
        cuts=1,
        seed=data.seed + 1,
        heldout=True,
        staves=staves,
    )
    rng = np.random.default_rng(data.seed)
    picks = rng.choice(len(held), size=min(data.heldout_examples, len(held)), replace=False)
    _write_jsonl(run_dir / "heldout.jsonl", [held[i] for i in sorted(picks)])
    inherited = Path(init_from) / "tokenizer.model" if not own_tokenizer else None
    vocab_mode = "keep"
    if inherited is not None and inherited.is_file():
        # Fine-tuning keeps the checkpoint's own tokenizer (kern or Gemma): its ids are its rows.
        (run_dir / "tokenizer.model").write_bytes(inherited.read_bytes())
        from omrgemma.kerntok import load_processor

        pieces = load_processor(inherited.read_bytes()).get_piece_size()
        model = dataclasses.replace(model, vocab_size=max(model.vocab_size, pieces))
    elif inherited is not None:
        raise UsageError(
            "the checkpoint to start from has no tokenizer.model", path=init_from,
            hint="put the tokenizer it was trained with beside it",
        )  # fmt: skip
    else:
        # The tokenizer sees every dataset's training text, so a later stage (piano after single
        # staff) needs no new vocabulary.
        texts, seen = list(pool), set(collections)
        for colls in DATASETS.values():
            if not set(colls) <= seen:  # music not in the pool yet
                files = split.train_files(data_dir, list(colls))[::3]
                texts += build_snippet_pool(files, measures=(1, 4), cuts=1, seed=data.seed)
                seen |= set(colls)
        spec = KernTokenizerSpec(vocab_size=vocab_size or model.vocab_size)
        (run_dir / "tokenizer.model").write_bytes(train_kern_tokenizer(texts, spec))
        vocab_mode = "replace"
    lora = lora or LoraSettings()
    if lora.enabled and (vocab_mode == "replace" or model.vocab_size != given_vocab):
        lora = dataclasses.replace(lora, train_full=(*lora.train_full, "llm/embedder/"))
    run = {
        "model": model.to_dict(),
        "data": dataclasses.asdict(data),
        "train": dataclasses.asdict(train),
        "init_from": init_from,
        "vocab": vocab_mode,
        "ctc": dataclasses.asdict(_with_invisible_ids(ctc or CtcSettings(), run_dir)),
        "lora": dataclasses.asdict(lora),
        "eval_sets": dict(
            eval_sets or {}
        ),  # train_slices: test-set slices checked with the held-out
        "pool_size": len(pool),
        "train_movements": len(train_files),
    }
    (run_dir / "run.json").write_text(json.dumps(run, indent=1))


def checkpoint_config(path: str | Path) -> PaliGemmaConfig:
    """The architecture of a checkpoint directory (ours or transformers), without its weights."""
    from omrgemma.checkpoint import detect_layout
    from omrgemma.config import from_hf_config

    path = Path(path)
    if (path / "run.json").is_file():  # a training run: its model, in float32 already
        return PaliGemmaConfig.from_dict(load_run(path)["model"])
    layout = detect_layout(path)
    if layout == "big_vision":
        raise UsageError(
            ".npz checkpoints carry no config", path=path, hint="use a model directory"
        )
    raw = json.loads((path / "config.json").read_text())
    config = PaliGemmaConfig.from_dict(raw) if layout == "omrgemma" else from_hf_config(raw)
    # Training runs in float32 whatever the checkpoint was stored in.
    return dataclasses.replace(config, param_dtype="float32", compute_dtype="float32")


def load_run(run_dir: Path) -> dict:
    path = Path(run_dir) / "run.json"
    if not path.is_file():
        raise UsageError(
            "not a prepared run folder", path=run_dir, hint="start it without --resume"
        )
    return json.loads(path.read_text())


def data_settings(run: dict) -> DataSettings:
    raw = dict(run["data"])
    raw["measures"] = tuple(raw["measures"])
    raw["text_buckets"] = tuple(raw["text_buckets"])
    ex = dict(raw.pop("examples"))
    ex["scales"], ex["fonts"] = tuple(ex["scales"]), tuple(ex["fonts"])
    return DataSettings(**raw, examples=ExampleOptions(**ex))


class SentencePieceEncoder:
    """Picklable text -> ids over serialized tokenizer bytes (built lazily in each worker)."""

    def __init__(self, model_bytes: bytes) -> None:
        self.model_bytes = model_bytes
        self._sp = None

    def __getstate__(self):
        return {"model_bytes": self.model_bytes}

    def __setstate__(self, state):
        self.model_bytes, self._sp = state["model_bytes"], None

    @property
    def processor(self):
        if self._sp is None:
            from omrgemma.kerntok import load_processor

            self._sp = load_processor(self.model_bytes)
        return self._sp

    def __call__(self, text: str) -> list[int]:
        return list(self.processor.encode(text))

    def decode(self, ids) -> str:
        return self.processor.decode([int(i) for i in ids])

    def special_ids(self) -> SpecialIds:
        sp = self.processor
        return SpecialIds(
            pad=sp.pad_id(), bos=sp.bos_id(), eos=sp.eos_id(), sep=sp.piece_to_id("\n")
        )


def _with_invisible_ids(ctc: CtcSettings, run_dir: Path) -> CtcSettings:
    """The run's tokenizer's invisible pieces as the CTC head's `skip` (unless given)."""
    if not ctc.enabled or ctc.skip:
        return ctc
    from omrgemma.ctc import invisible_ids
    from omrgemma.kerntok import load_processor

    sp = load_processor((run_dir / "tokenizer.model").read_bytes())
    pieces = [sp.id_to_piece(i) for i in range(sp.get_piece_size())]
    return dataclasses.replace(ctc, skip=invisible_ids(pieces, sp.eos_id()))


def ctc_settings(run: dict) -> CtcSettings:
    """The run's auxiliary CTC head (off for runs prepared before it existed)."""
    raw = dict(run.get("ctc", {}))
    raw["skip"] = tuple(raw.get("skip", ()))
    return CtcSettings(**raw)


def lora_settings(run: dict) -> LoraSettings:
    """The run's LoRA settings (off, i.e. full fine-tuning, for runs prepared before LoRA)."""
    return LoraSettings.from_dict(run.get("lora", {}))


def model_fns(config: PaliGemmaConfig, ctc: CtcSettings | None = None):
    """`ModelFns` over the real PaliGemma implementation, with a from-scratch initialisation.

    With an enabled `ctc`, the parameters get a training-only `ctc` subtree (`omrgemma.ctc`)
    and `logits_aux` adds its weighted loss; `export_model` leaves the subtree out.

    big_vision zero-initialises the projector `img/head`, which suits an encoder that is already
    trained. From scratch it makes every image look the same at first: the decoder then learns
    kern as a language and ignores the image (the plateau of docs/cpu-learning-curve.md, where
    shuffling the images changed nothing). Here the head starts as a fan-in normal, so the image
    tokens differ between images, at the scale of the text embeddings, from the first step.
    """
    import jax

    from omrgemma import ctc as ctc_head
    from omrgemma.nn import paligemma as pg
    from omrgemma.train import ModelFns

    ctc = ctc or CtcSettings()

    def init(rng):
        params = pg.init_params(config, rng)
        kernel = params["img"]["head"]["kernel"]
        fresh = jax.random.normal(jax.random.fold_in(rng, 1), kernel.shape) / kernel.shape[0] ** 0.5
        head = dict(params["img"]["head"], kernel=fresh.astype(kernel.dtype))
        params = dict(params, img=dict(params["img"], head=head))
        return with_ctc_head(params, config, ctc, jax.random.fold_in(rng, 2))

    def logits(params, images, tokens, mask_ar, input_mask):
        return pg.prefix_lm_logits(params, config, images, tokens, mask_ar, input_mask.astype(bool))

    def logits_aux(params, images, tokens, mask_ar, input_mask, targets, weights):
        zimg = pg.encode_image(params, config, images)
        frames = ctc_head.frame_logits(params["ctc"], config, ctc, zimg)
        aux = ctc.weight * ctc_head.ctc_loss(frames, targets, weights, ctc)
        if ctc.encoder_only:
            return None, aux
        out = pg.prefix_lm_logits(
            params, config, images, tokens, mask_ar, input_mask.astype(bool), image_tokens=zimg
        )
        return out, aux

    return ModelFns(init=init, logits=logits, logits_aux=logits_aux if ctc.enabled else None)


def with_ctc_head(
    params: dict, config: PaliGemmaConfig, ctc: CtcSettings, rng, *, silent: bool = False
) -> dict:
    """`params` plus a fresh `ctc` head when the run has one (and it is not there yet);
    `silent` for a trained encoder (see `omrgemma.ctc.init_head`)."""
    from omrgemma import ctc as ctc_head

    if not ctc.enabled or "ctc" in params:
        return params
    return dict(params, ctc=ctc_head.init_head(config, ctc, rng, silent=silent))


def stream_spec(run: dict, encoder: SentencePieceEncoder, batch_size: int):
    from omrgemma.data.pipeline import StreamSpec

    data = data_settings(run)
    return StreamSpec(
        seed=data.seed,
        batch_size=batch_size,
        shard_size=data.shard_size,
        text_buckets=data.text_buckets,
        special=encoder.special_ids(),
        name=json.dumps([run["data"], run["model"]["name"]], sort_keys=True),
    )


def heldout_evaluator(run_dir: Path, run: dict, config, fns, encoder, batch_size: int):
    """Evaluator on the run's fixed held-out slice: NLL true vs shuffled image, greedy SER."""
    from omrgemma.data.kern_examples import KernExamples
    from omrgemma.data.pipeline import collate
    from omrgemma.decode import Greedy, generate
    from omrgemma.train import Evaluator, images_to_model

    data = data_settings(run)
    options = dataclasses.replace(
        data.examples, camera_probability=0.0, scan_probability=0.0, clutter_probability=0.0
    )
    spec = stream_spec(run, encoder, batch_size)
    images, ids, refs = [], [], []
    for i, kern in enumerate(_read_jsonl(Path(run_dir) / "heldout.jsonl")):
        made = KernExamples(pool=(kern,), options=options)(np.random.default_rng((7, i)))
        tokens = encoder(kern)
        if made is None or len(tokens) > spec.max_suffix:
            continue
        images.append(made[0])
        ids.append(tokens)
        refs.append(kern)
    lengths = np.asarray([len(t) for t in ids], np.int32)
    padded = np.zeros((len(ids), int(lengths.max())), np.int32)
    for r, t in enumerate(ids):
        padded[r, : len(t)] = t
    table = {"images": np.stack(images), "tokens": padded, "lengths": lengths}
    rows = np.arange(len(ids))
    batches = [
        collate(spec, table, rows[i : i + batch_size]) for i in range(0, len(rows), batch_size)
    ]
    special = encoder.special_ids()
    max_new = int(lengths.max()) + 16

    def transcribe(params, batch):
        pixels = np.asarray(images_to_model(batch["images"]))
        out = generate(
            params, config, pixels, [[special.bos, special.sep]] * len(pixels),
            max_new_tokens=max_new, eos_id=special.eos, pad_id=special.pad, strategy=Greedy(),
        )  # fmt: skip
        return [encoder.decode(r.tokens) for r in out]

    ctc = ctc_settings(run)
    if ctc.encoder_only:
        return CtcEvaluator(config=config, settings=ctc, batches=batches)
    return Evaluator(model=fns, batches=batches, transcribe=transcribe, references=refs)


@dataclasses.dataclass(kw_only=True)
class CtcEvaluator:
    """Held-out checks of an encoder-only run: the CTC loss per piece, and the piece error rate
    (%) of the greedy CTC reading against the inked target pieces."""

    config: PaliGemmaConfig
    settings: CtcSettings
    batches: list
    _frames: Any = None

    def __call__(self, params) -> dict[str, float]:
        import jax

        from omrgemma import ctc as ctc_head
        from omrgemma.metrics import levenshtein
        from omrgemma.nn import paligemma as pg
        from omrgemma.train import images_to_model

        if self._frames is None:
            self._frames = jax.jit(
                lambda p, images: ctc_head.frame_logits(
                    p["ctc"], self.config, self.settings, pg.encode_image(p, self.config, images)
                )
            )
        losses, errors, total = [], 0, 0
        for batch in self.batches:
            targets, weights = batch["tokens"][:, 1:], batch["mask_loss"][:, 1:]
            frames = self._frames(params, images_to_model(batch["images"]))
            losses.append(float(ctc_head.ctc_loss(frames, targets, weights, self.settings)))
            wanted = ctc_head.target_pieces(targets, weights, self.settings)
            for hyp, ref in zip(
                ctc_head.best_paths(frames, self.settings.blank), wanted, strict=True
            ):
                errors += levenshtein(hyp, ref)
                total += len(ref)
        return {
            "heldout_ctc": float(np.mean(losses)),
            "heldout_per": 100.0 * errors / max(total, 1),
        }


def run_training(
    run_dir: Path,
    *,
    resume: bool,
    minutes: float | None = None,
    steps: int | None = None,
    workers: int = 1,
    worker_nice: int = 5,
    n_devices: int | None = None,
    batch_size: int | None = None,
    console=None,
) -> None:
    """Train the prepared run in `run_dir` (from its latest checkpoint with `resume`).

    `batch_size` overrides the run's (e.g. a GPU continuing a CPU run); a resumed stream then
    starts at the next shard boundary when its position is not a multiple of the new size.
    """
    from omrgemma.data.kern_examples import KernExamples
    from omrgemma.data.pipeline import ShardStream
    from omrgemma.jaxsetup import enable_compilation_cache
    from omrgemma.train import TrainConfig, make_mesh, train

    run_dir = Path(run_dir)
    run = load_run(run_dir)
    # A resumed run (or a new run of the same shapes) loads its step functions instead of
    # compiling them again: minutes on a busy CPU.
    enable_compilation_cache(os.environ.get("JAX_COMPILATION_CACHE_DIR") or None)
    config = PaliGemmaConfig.from_dict(run["model"])
    cfg = TrainConfig(**run["train"])
    if batch_size:
        cfg = dataclasses.replace(cfg, batch_size=batch_size)
    encoder = SentencePieceEncoder((run_dir / "tokenizer.model").read_bytes())
    pool = tuple(_read_jsonl(run_dir / "pool.jsonl"))
    maker = KernExamples(pool=pool, options=data_settings(run).examples)
    spec = stream_spec(run, encoder, cfg.batch_size)
    if spec.shard_size % cfg.batch_size:
        spec = dataclasses.replace(
            spec, shard_size=cfg.batch_size * (spec.shard_size // cfg.batch_size + 1)
        )
    import jax

    ctc = ctc_settings(run)
    fns = model_fns(config, ctc)
    if ctc.encoder_only:  # the decoder is not run: keep weight decay off its weights too
        cfg = dataclasses.replace(cfg, freeze="|".join(filter(None, (cfg.freeze, "^llm/"))))
    init_params = None
    from omrgemma import train_state

    if run.get("init_from") and (not resume or train_state.latest_checkpoint(run_dir) is None):
        init_params = _init_from_checkpoint(run["init_from"], config, run.get("vocab", "keep"))
        init_params = with_ctc_head(
            init_params, config, ctc, jax.random.PRNGKey(cfg.seed + 1), silent=True
        )
    from omrgemma import lora as lora_fns

    lora = lora_settings(run)
    if lora.enabled:  # train {"base": frozen, "lora": factors}
        fns = lora_fns.wrap_model_fns(fns, lora)
        cfg = dataclasses.replace(cfg, freeze=lora.frozen_pattern)
        if init_params is not None:
            init_params = lora_fns.with_lora(init_params, lora, jax.random.PRNGKey(cfg.seed + 2))

    def make_data(position: int):
        if position % spec.batch_size:
            position = -(-position // spec.shard_size) * spec.shard_size
        return ShardStream(
            spec, maker, encoder, start=position, workers=workers, prefetch=2 * max(workers, 1),
            cache=run_dir / "shards", worker_nice=worker_nice,
        )  # fmt: skip

    evaluator = heldout_evaluator(run_dir, run, config, fns, encoder, min(cfg.batch_size, 32))
    if lora.enabled:
        evaluator.transcribe = lora_fns.on_merged(evaluator.transcribe, lora)
    if run.get("eval_sets") and not ctc.encoder_only:
        from omrgemma import train_slices
        from omrgemma.settings import data_dir

        evaluator = train_slices.SliceEvaluator(
            inner=evaluator,
            recognizer=train_slices.training_recognizer(run_dir, config),
            slices=train_slices.build_slices(run["eval_sets"], data_dir()),
            model_params=(lambda p: lora_fns.merged(p, lora)) if lora.enabled else lambda p: p,
        )
    train(
        run_dir=run_dir, model=fns, make_data=make_data, cfg=cfg, resume=resume,
        max_steps=steps, max_minutes=minutes, evaluator=evaluator,
        mesh=make_mesh(n_devices), init_params=init_params, console=console,
        extra_meta={"model": run["model"]},
    )  # fmt: skip


def _init_from_checkpoint(path: str, config: PaliGemmaConfig, vocab: str):
    """Parameters of an official (or our own) checkpoint for fine-tuning, its vocabulary fitted
    to the run's tokenizer (`vocab`: "keep" old rows, or "replace" them all)."""
    import jax

    from omrgemma.checkpoint import load_any

    if (Path(path) / "run.json").is_file():
        loaded = SimpleNamespace(config=checkpoint_config(path), params=run_params(Path(path)))
    else:
        loaded = load_any(path, param_dtype=config.param_dtype)
    params = loaded.params
    if "ctc" in params and (
        loaded.config.grid_shape[0] != config.grid_shape[0]
        or loaded.config.vocab_size != config.vocab_size
        or vocab == "replace"
    ):  # a CTC head of another shape or vocabulary: a fresh one is added instead
        params = {k: v for k, v in params.items() if k != "ctc"}
    if loaded.config.patch_hw != config.patch_hw:
        params = adapt_patch_size(params, config, jax.random.PRNGKey(3))
    if loaded.config.grid_shape != config.grid_shape:
        params = adapt_image_size(params, loaded.config.grid_shape, config.grid_shape)
    if loaded.config.vocab_size != config.vocab_size or vocab == "replace":
        params = adapt_vocabulary(
            params, config.vocab_size, jax.random.PRNGKey(0), keep_rows=vocab == "keep"
        )
    return params


def run_params(run_dir: Path) -> dict:
    """The parameters of a training run's latest checkpoint, training-only heads (CTC) included,
    so a new run can start from another's exact weights."""
    import jax
    from safetensors.numpy import load_file

    from omrgemma import train_state

    run = load_run(run_dir)
    checkpoint = train_state.latest_checkpoint(run_dir)
    if checkpoint is None:
        raise UsageError("the run to start from has no checkpoint yet", path=run_dir)
    if lora_settings(run).enabled:
        raise UsageError(
            "a LoRA run's checkpoint holds factors, not a model", path=run_dir,
            hint="export it (omrgemma train RUN --export DIR) and start from DIR",
        )  # fmt: skip
    config = PaliGemmaConfig.from_dict(run["model"])
    template = jax.eval_shape(model_fns(config, ctc_settings(run)).init, jax.random.PRNGKey(0))
    flat = load_file(str(checkpoint / train_state.STATE_FILE))
    params = {k.removeprefix("params/"): v for k, v in flat.items() if k.startswith("params/")}
    return train_state.unflatten_state(template, params, source=checkpoint)


def adapt_image_size(params: dict, old_grid: tuple[int, int], new_grid: tuple[int, int]) -> dict:
    """The learned position table resampled to a new patch grid (big_vision's bilinear zoom);
    every other weight is independent of the input size."""
    import jax.numpy as jnp

    from omrgemma.nn.vit import resample_posemb

    table = params["img"]["pos_embedding"]
    new = resample_posemb(np.asarray(table, np.float32), new_grid, old_grid)
    return dict(params, img=dict(params["img"], pos_embedding=jnp.asarray(new, table.dtype)))


def adapt_patch_size(params: dict, config: PaliGemmaConfig, rng) -> dict:
    """A fresh patch embedding of `config`'s patch shape (fan-in normal, zero bias), e.g. to
    move a staff-level model from 16x16 to full-height 64x8 patches. Everything after the
    embedding is kept; the position table is resampled by `adapt_image_size` as for any grid."""
    import jax
    import jax.numpy as jnp

    old = params["img"]["embedding"]
    (ph, pw), width = config.patch_hw, old["kernel"].shape[-1]
    shape = (ph, pw, old["kernel"].shape[2], width)
    fan_in = ph * pw * shape[2]
    kernel = (jax.random.normal(rng, shape, jnp.float32) / fan_in**0.5).astype(old["kernel"].dtype)
    embedding = {"kernel": kernel, "bias": jnp.zeros_like(old["bias"])}
    return dict(params, img=dict(params["img"], embedding=embedding))


def adapt_vocabulary(params: dict, vocab_size: int, rng, *, keep_rows: bool) -> dict:
    """The embedding table f32[V, D] resized to [vocab_size, D] (it is tied: also the output layer).

    keep_rows: the tokenizer extends the checkpoint's (same ids for the old pieces), so old rows
    stay and new rows are drawn around the mean embedding with its per-dimension spread (as
    transformers does for added tokens). Otherwise the tokenizer is a different one (e.g. our kern
    tokenizer on an official checkpoint): every row is drawn that way, because an old row means
    nothing for the piece that now has its id.
    """
    import jax
    import jax.numpy as jnp

    table = params["llm"]["embedder"]["input_embedding"]
    old = table.shape[0]
    if keep_rows and vocab_size < old:
        raise UsageError(
            f"the tokenizer has {vocab_size} pieces, fewer than the checkpoint's {old}"
        )
    mean, std = table.mean(axis=0), table.std(axis=0)
    fresh = mean + std * jax.random.normal(rng, (vocab_size, table.shape[1]), jnp.float32)
    fresh = fresh.astype(table.dtype)
    new = fresh.at[:old].set(table) if keep_rows else fresh
    llm = dict(params["llm"], embedder=dict(params["llm"]["embedder"], input_embedding=new))
    return dict(params, llm=llm)


def export_model(
    run_dir: Path, out_dir: Path, *, card: str | None = None, force: bool = True
) -> Path:
    """Write the latest checkpoint of `run_dir` as a model directory with bfloat16 weights
    (a LoRA run's factors merged into them)."""
    import jax
    import jax.numpy as jnp
    from safetensors.numpy import load_file

    from omrgemma import train_state
    from omrgemma.checkpoint import save_model_dir
    from omrgemma.io import write_atomic
    from omrgemma.recognizer import INFERENCE_FILE

    run_dir = Path(run_dir)
    run = load_run(run_dir)
    latest = train_state.latest_checkpoint(run_dir)
    if latest is None:
        raise UsageError("the run has no checkpoint yet", path=run_dir)
    config = dataclasses.replace(PaliGemmaConfig.from_dict(run["model"]), param_dtype="bfloat16")
    flat = load_file(str(latest / train_state.STATE_FILE))
    params: dict = {}
    for key, value in flat.items():
        if not key.startswith("params/"):
            continue  # optimizer state
        *parents, leaf = key.split("/")[1:]
        node = params
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    lora = lora_settings(run)
    if lora.enabled:  # W + scale * A @ B in float32
        from omrgemma.lora import merge

        params = merge(params["base"], params["lora"], lora)
    params.pop("ctc", None)  # the training-only CTC head
    params = jax.tree.map(lambda x: jnp.asarray(x, jnp.bfloat16), params)
    folder = save_model_dir(
        out_dir, params, config, tokenizer=run_dir / "tokenizer.model",
        card=card or model_card(run_dir), force=force,
    )  # fmt: skip
    if (settings := inference_settings(run)) is not None:
        write_atomic(folder / INFERENCE_FILE, json.dumps(settings, indent=2) + "\n")
    return folder


def inference_settings(run: dict) -> dict | None:
    """What `inference.json` of an exported model says: for a model trained on staves of at
    most N measures, that longer systems are read in pieces of N (`omrgemma.pipeline.chunks`)."""
    data = run.get("data", {})
    if data.get("dataset") not in STAFF_DATASETS | {"single"} or "measures" not in data:
        return None
    return {"piece_measures": int(data["measures"][1])}


LICENCES = {
    "mono/creighton-nova-scotia": "Creighton, Nova Scotia folk songs (mixed; research use)",
    "mono/densmore-teton-sioux": "Densmore, Teton Sioux music (mixed; research use)",
    "mono/foster-songs": "Foster songs (mixed; research use)",
    "mono/schubert-songs": "Schubert song melodies (mixed; research use)",
    "polish-scores/1-staff": "Polish heritage scores, polishscores.org (CC BY 4.0)",
    "polish-scores/2-staff": "Polish heritage scores, polishscores.org (CC BY 4.0)",
    "chopin-first-editions/1-staff": "Chopin first editions, NIFC (CC BY 4.0)",
    "chopin-first-editions/2-staff": "Chopin first editions, NIFC (CC BY 4.0)",
    "piano/beethoven-piano-sonatas": "Beethoven piano sonatas, C. S. Sapp (no licence stated)",
    "piano/joplin": "Joplin rags (CC BY-NC-SA 4.0)",
    "piano/scarlatti-keyboard-sonatas": "Scarlatti keyboard sonatas (CC BY-NC-SA 4.0)",
    "piano/chopin-preludes": "Chopin preludes (© C. S. Sapp)",
    "piano/hummel-preludes": "Hummel preludes (© C. S. Sapp)",
}


def model_card(run_dir: Path) -> str:
    """A README.md for an export of `run_dir`: architecture, data, training so far, measurements.

    Every number is read from the run folder (run.json, the latest checkpoint's meta.json and
    log.jsonl), so a later export describes the later checkpoint.
    """
    from omrgemma import train_state
    from omrgemma.recognizer import model_unit

    run_dir = Path(run_dir)
    run = load_run(run_dir)
    config = PaliGemmaConfig.from_dict(run["model"])
    data = data_settings(run)
    latest = train_state.latest_checkpoint(run_dir)
    meta = train_state.read_meta(latest) if latest else {"step": 0, "data_position": 0}
    records = _read_jsonl(run_dir / "log.jsonl") if (run_dir / "log.jsonl").is_file() else []
    steps = [r for r in records if "loss" in r and r["step"] <= meta["step"]]
    evals = [r for r in records if "heldout_nll" in r and r["step"] <= meta["step"]]
    v, t = config.vision, config.text
    ph, pw = config.patch_hw
    patch = str(ph) if ph == pw else f"{ph}x{pw}"
    n_params = _count_params(config)
    rate = np.median([r["samples_per_s"] for r in steps[-20:]]) if steps else float("nan")
    unit = model_unit(config.image_hw)
    reads = (
        "one engraved staff and writes its standalone **kern (a multi-staff system is split at "
        "its staves, each staff read, and the staves' kern joined measure by measure)"
        if unit == "staff"
        else "one engraved system and writes standalone **kern"
    )
    lines = [
        f"# {config.name}",
        "",
        "A small PaliGemma-2-shaped model (SigLIP-style ViT encoder + Gemma-2-style decoder, "
        f"prefix-LM) that reads {reads}. Trained on "
        "CPU by `omrgemma train`; **an early checkpoint: see the measurements before "
        "relying on it**.",
        "",
        "## Architecture",
        "",
        f"- {n_params / 1e6:.2f} M parameters, stored in bfloat16",
        f"- input: {'x'.join(map(str, config.image_hw))} (height x width) grey {unit} image "
        f"(fitted with aspect kept, centred on white), patch {patch} -> "
        f"{config.num_image_tokens} image tokens",
        f"- encoder: width {v.width}, {v.depth} layers, {v.num_heads} heads, MLP {v.mlp_dim}",
        f"- decoder: width {t.width}, {t.depth} layers, {t.num_heads} query / {t.num_kv_heads} KV "
        f"heads of {t.head_dim}, GeGLU MLP {t.mlp_dim}, soft-caps {config.attn_logits_softcap} / "
        f"{config.final_logits_softcap}",
        f"- tokenizer: SentencePiece BPE made for kern, {config.vocab_size} pieces "
        "(`omrgemma/kerntok.py`; tab, newline and frequent interpretations are single pieces)",
        "- prompt: empty (`<bos> <sep>`), output: the system's kern from `**kern` to `*-`, "
        "measure numbers removed",
        "",
        "## Training data",
        "",
        f"Dataset `{data.dataset}`: standalone systems of {data.measures[0]}-{data.measures[1]} "
        f"measures cut from {run.get('train_movements', '?')} training movements "
        f"({run.get('pool_size', '?')} snippets; held-out movements of `omrgemma/data/heldout.json` "
        "excluded), engraved with verovio in varied fonts and scales, "
        f"{data.examples.camera_probability:.0%} camera-like and {data.examples.scan_probability:.0%} "
        "scan-like degradations, "
        f"{data.examples.clutter_probability:.0%} of staves with printed-edition clutter "
        "(fingerings, dynamics, neighbouring-staff fragments). Sources and licences (several are non-commercial; use the model "
        "accordingly):",
        "",
        *[f"- `{c}`: {LICENCES.get(c, 'see data README')}" for c in DATASETS[data.dataset]],
        "",
        "## Training so far",
        "",
        *_origin_lines(run),
        f"- steps {meta['step']}, samples seen {meta['data_position']}, batch "
        f"{run['train']['batch_size']}, AdamW peak LR {run['train']['learning_rate']}, warm-up "
        f"{run['train']['warmup_steps']} steps, label smoothing {run['train']['label_smoothing']}",
        f"- hardware: a shared 2-core x86 CPU (no GPU), about {rate:.2f} samples/s; "
        f"{meta.get('trained_s', 0) / 3600:.2f} h of training time",
        "",
        "## Measurements",
        "",
        f"Held-out slice: {data.heldout_examples} systems from held-out movements of the same "
        "collections, clean renders. `image gap` = NLL with images shuffled across the batch minus "
        "NLL with the true images: near 0 means the model does not read the image yet.",
        "",
        "| step | train loss | held-out NLL | shuffled-image NLL | image gap | held-out SER % |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    losses = {r["step"]: r["loss"] for r in steps}
    for r in evals:
        near = max((s for s in losses if s <= r["step"]), default=None)
        loss = f"{losses[near]:.3f}" if near is not None else ""
        ser = f"{r['heldout_ser']:.1f}" if "heldout_ser" in r else ""
        lines.append(
            f"| {r['step']} | {loss} | {r['heldout_nll']:.3f} | {r['shuffled_nll']:.3f} | "
            f"{r['image_gap']:+.3f} | {ser} |"
        )
    if not evals:
        lines.append("| (no evaluation yet) | | | | | |")
    if steps:
        picks = (
            [steps[round(i * (len(steps) - 1) / 7)] for i in range(8)] if len(steps) > 8 else steps
        )
        curve = ", ".join(f"{r['step']}: {r['loss']:.2f}" for r in picks)
        lines += ["", f"Training loss (label-smoothed, 10-step means) by step: {curve}."]
    lines += [
        "",
        "Anchors (GrandStaff test set, a different and harder task: two-staff piano systems): "
        "Sheet Music Transformer SER 5.1 %, PaliGemma 2 3B at 896 px SER 2.3 %.",
        "",
        "## Continue training",
        "",
        "```",
        "omrgemma train RUN_DIR --resume --minutes 60         # on this CPU",
        "OUT=out MINUTES=8 scripts/train_gpu.sh                # on a GPU machine",
        "omrgemma train RUN_DIR --export models/omrgemma-small # write this directory",
        "```",
        "",
    ]
    return "\n".join(lines)


def _origin_lines(run: dict) -> list[str]:
    """Where the weights started and the training-only losses, for the model card."""
    lines = []
    if run.get("init_from"):
        lines.append(
            f"- started from `{run['init_from']}` (its weights; the position table resampled "
            "when the input size differs), not from random weights"
        )
    ctc = ctc_settings(run)
    if ctc.enabled:
        lines.append(
            f"- auxiliary CTC loss on the image tokens, weight {ctc.weight}, {ctc.upsample} frames "
            "per patch column (`omrgemma/ctc.py`; training only, not part of the exported model)"
        )
    return lines


def _count_params(config: PaliGemmaConfig) -> int:
    from omrgemma.nn.paligemma import abstract_params, count_params

    return count_params(abstract_params(config))

"""`omrgemma train`: prepare, train, resume and export a training run (see omrgemma/train_run.py)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from omrgemma.errors import UsageError


@click.command(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    short_help="Train or fine-tune a model.",
)
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--resume", is_flag=True, help="Continue the run from its latest checkpoint.")
@click.option("--preset", default="small", show_default=True, help="Model preset for a new run.")
@click.option(
    "--dataset",
    type=click.Choice(["single", "piano", "piano-staves", "staves"]),
    default="single",
    show_default=True,
    help="Training music: single-staff songs, piano systems, each piano staff alone, or "
    "every staff of both (staff-level models).",
)
@click.option(
    "--vocab-size",
    type=int,
    default=None,
    help="Kern tokenizer pieces for a new run [the preset's vocabulary].",
)
@click.option("--measures", default="1-2", show_default=True, help="Measures per system, LOW-HIGH.")
@click.option(
    "--max-tokens",
    type=click.IntRange(min=64),
    default=256,
    show_default=True,
    help="Longest kern (in tokens) a training example may have; longer ones are drawn again. "
    "Raise it with --measures for long systems (a dense 8-measure piano staff takes ~300).",
)
@click.option(
    "--init-from",
    type=click.Path(exists=True, path_type=Path),
    default=None,
    help="Fine-tune this model directory (ours or transformers) with its tokenizer, or start "
    "from a training run folder's latest checkpoint (its CTC head kept).",
)
@click.option(
    "--tokenizer",
    type=click.Choice(["checkpoint", "kern"]),
    default="checkpoint",
    show_default=True,
    help="With --init-from: keep the checkpoint's tokenizer, or train a kern tokenizer "
    "and replace the embedding rows.",
)
@click.option(
    "--image-size",
    default=None,
    help="Input HEIGHTxWIDTH (or one side) instead of the preset's or checkpoint's; a "
    "checkpoint's position embedding is resampled to it.",
)
@click.option(
    "--patch-size",
    default=None,
    help="Patch HEIGHTxWIDTH (or one side) instead of the preset's or checkpoint's; a "
    "checkpoint's patch embedding then starts afresh, e.g. 64x8: full-height staff columns.",
)
@click.option(
    "--encoder-only",
    is_flag=True,
    help="Train only the vision encoder, on the CTC loss (--ctc, default 1): the decoder is "
    "neither run nor changed. A fast first stage; continue with --init-from its export.",
)
@click.option(
    "--ctc",
    "ctc_weight",
    default=0.0,
    show_default=True,
    help="Weight of the training-only CTC loss on the image tokens (0: off).",
)
@click.option(
    "--input-dropout",
    default=0.0,
    show_default=True,
    help="Share of the decoder's input kern tokens replaced by <unk> while training.",
)
@click.option(
    "--clutter",
    default=0.0,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="Share of staff examples given fingerings, dynamics and neighbouring-staff fragments, "
    "as staves cut from printed pages carry them.",
)
@click.option(
    "--camera",
    default=0.15,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="Share of examples photographed (perspective, curvature, blur, lighting, JPEG).",
)
@click.option(
    "--scan",
    default=0.15,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="Share of examples scanned (skew, bleed-through, 1-bit threshold, speckle); "
    "--camera + --scan is at most 1.",
)
@click.option("--ctc-upsample", default=4, show_default=True, help="CTC frames per patch column.")
@click.option(
    "--lora-rank",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="With --init-from: train rank-N LoRA factors of the decoder's attention and MLP "
    "weights, the checkpoint frozen (0: fine-tune every weight). Export merges them.",
)
@click.option(
    "--lora-alpha",
    type=click.FloatRange(min=0, min_open=True),
    default=16.0,
    show_default=True,
    help="LoRA updates are alpha/rank * A @ B.",
)
@click.option("--batch-size", type=int, default=None, help="Examples per step [new runs: 16].")
@click.option("--lr", "learning_rate", default=1e-3, show_default=True)
@click.option("--warmup", default=100, show_default=True, help="Warm-up steps.")
@click.option(
    "--total-steps", default=100_000, show_default=True, help="Length of the cosine schedule."
)
@click.option("--freeze", default=None, help="Regex of parameter paths not to train, e.g. ^img/.")
@click.option("--minutes", type=float, default=None, help="Stop after this many minutes.")
@click.option("--steps", type=int, default=None, help="Stop after this many more steps.")
@click.option("--workers", default=1, show_default=True, help="Rendering worker processes.")
@click.option("--checkpoint-every", default=300.0, show_default=True, help="Seconds.")
@click.option("--eval-every", default=900.0, show_default=True, help="Seconds.")
@click.option(
    "--eval-sets",
    default="grandstaff-like:16,real-scans:8",
    show_default=True,
    help="Test-set slices (SET:COUNT, comma-separated) read at every evaluation besides the "
    "held-out slice, as `omrgemma evaluate` reads them; '' for none.",
)
@click.option("--seed", default=0, show_default=True)
@click.option("--fsdp", is_flag=True, help="Shard parameters and optimizer state too.")
@click.option(
    "--prepare-only",
    is_flag=True,
    help="Prepare a new run folder (pool, tokenizer, held-out slice) and stop.",
)
@click.option(
    "--export",
    "export_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Only export the latest checkpoint to this model directory.",
)
@click.option(
    "--blend-with",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="With --export: mix the run's weights with this model directory's (the same model at "
    "another stage, e.g. the one the run started from), parameter by parameter.",
)
@click.option(
    "--blend",
    default=0.5,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="With --blend-with: the run's share of the mix.",
)
@click.option(
    "--card",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="README.md model card to put in the exported directory.",
)
def command(run_dir: Path, resume: bool, preset: str, dataset: str, vocab_size: int | None,
            measures: str, max_tokens: int,
            init_from: Path | None, tokenizer: str, image_size: str | None,
            patch_size: str | None, encoder_only: bool, ctc_weight: float,
            ctc_upsample: int, input_dropout: float, clutter: float, camera: float, scan: float,
            lora_rank: int,
            lora_alpha: float,
            batch_size: int, learning_rate: float, warmup: int,
            total_steps: int, freeze: str | None, minutes: float | None, steps: int | None,
            workers: int, checkpoint_every: float, eval_every: float, eval_sets: str, seed: int,
            fsdp: bool,
            prepare_only: bool,
            export_dir: Path | None, blend_with: Path | None, blend: float,
            card: Path | None) -> None:  # fmt: skip
    """Train a model on engraved kern snippets; checkpoints and logs go to RUN_DIR.

    A new RUN_DIR is prepared first (snippet pool from training movements only, kern tokenizer,
    held-out slice). Training stops at --minutes/--steps, or on Ctrl-C/SIGTERM, always after
    writing a checkpoint; --resume continues exactly where it stopped.

    \b
    Examples:
      omrgemma train runs/small --minutes 60
      omrgemma train runs/small --resume --minutes 60
      omrgemma train runs/ft --init-from models/paligemma2-3b-pt-224 --lora-rank 16
      omrgemma train runs/small --export models/omrgemma-small --card card.md
      omrgemma train runs/small --export out/soup --blend-with models/omrgemma-small
    """
    from rich.console import Console

    from omrgemma import train_run, train_slices
    from omrgemma.ctc import CtcSettings
    from omrgemma.data.kern_examples import ExampleOptions
    from omrgemma.lora import LoraSettings
    from omrgemma.settings import data_dir
    from omrgemma.train import TrainConfig

    console = Console(stderr=True)
    if export_dir is not None:
        text = card.read_text() if card else None
        if blend_with is None:
            out = train_run.export_model(run_dir, export_dir, card=text)
        else:
            out = _export_blend(run_dir, export_dir, blend_with, blend, text)
        console.print(f"exported {out}")
        return
    if not resume:
        if preset not in train_run.PRESETS:
            raise UsageError(
                f"unknown preset {preset!r}", hint=f"one of {sorted(train_run.PRESETS)}"
            )
        if lora_rank and init_from is None:
            raise UsageError("--lora-rank adapts a trained model", hint="add --init-from MODEL")
        if lora_rank and freeze:
            raise UsageError("--lora-rank freezes the checkpoint itself", hint="drop --freeze")
        if camera + scan > 1:
            raise UsageError(
                f"--camera {camera} and --scan {scan} add up to more than 1",
                hint="each example gets one degradation at most: lower one of them",
            )
        low, _, high = measures.partition("-")
        cfg = TrainConfig(
            batch_size=batch_size or 16, learning_rate=learning_rate, warmup_steps=warmup,
            total_steps=total_steps, freeze=freeze, seed=seed, fsdp=fsdp,
            checkpoint_every_s=checkpoint_every, eval_every_s=eval_every,
            input_dropout=input_dropout,
        )  # fmt: skip
        data = train_run.DataSettings(
            dataset=dataset, measures=(int(low), int(high or low)), seed=seed,
            text_buckets=train_run.text_buckets(max_tokens),
            examples=ExampleOptions(
                clutter_probability=clutter, camera_probability=camera, scan_probability=scan
            ),
        )  # fmt: skip
        console.print(f"preparing {run_dir} (snippet pool, tokenizer, held-out slice)")
        model = train_run.PRESETS[preset]
        if init_from is not None:
            model = train_run.checkpoint_config(init_from)
        if image_size:
            model = dataclasses.replace(model, image_size=_parse_size(image_size))
        if patch_size:
            try:
                model = dataclasses.replace(
                    model, patch_size=_parse_size(patch_size, "--patch-size")
                )
            except ValueError as error:  # the image is not a whole number of patches
                raise UsageError(
                    str(error), hint="pick a patch that divides --image-size"
                ) from None
        if encoder_only and not ctc_weight:
            ctc_weight = 1.0
        train_run.prepare_run(
            run_dir, model=model, data=data, train=cfg, data_dir=data_dir(),
            init_from=str(init_from) if init_from else None, vocab_size=vocab_size,
            tokenizer=tokenizer,
            ctc=CtcSettings(weight=ctc_weight, upsample=ctc_upsample, encoder_only=encoder_only),
            lora=LoraSettings(rank=lora_rank, alpha=lora_alpha),
            eval_sets=train_slices.parse_slices(eval_sets),
        )  # fmt: skip
        if prepare_only:
            return
    train_run.run_training(
        run_dir, resume=resume, minutes=minutes, steps=steps, workers=workers, console=console,
        batch_size=batch_size if resume else None,
    )  # fmt: skip


def _parse_size(text: str, option: str = "--image-size") -> int | tuple[int, int]:
    """ "224" -> 224, "64x512" -> (64, 512)."""
    try:
        parts = [int(p) for p in text.lower().split("x")]
    except ValueError:
        parts = []
    if len(parts) == 1 and parts[0] > 0:
        return parts[0]
    if len(parts) == 2 and min(parts) > 0:
        return parts[0], parts[1]
    raise UsageError(f"{option} {text!r} is not HEIGHTxWIDTH or one side", hint="e.g. 64x512")


def _export_blend(run_dir: Path, out: Path, other: Path, share: float, card: str | None) -> Path:
    """Export the run's latest checkpoint mixed with model directory `other`: (1 - share) *
    other + share * run (`omrgemma.blend`)."""
    import tempfile

    from omrgemma import train_run
    from omrgemma.blend import blend_model_dirs

    with tempfile.TemporaryDirectory(prefix="omrgemma-blend-") as tmp:
        exported = train_run.export_model(run_dir, Path(tmp) / "run")
        note = (f"\n## Blend\n\nThese weights are {1 - share:g} x `{other}` + {share:g} x the "
                f"latest checkpoint of `{run_dir}`, parameter by parameter (`omrgemma/blend.py`).\n")  # fmt: skip
        text = card or (exported / "README.md").read_text() + note
        return blend_model_dirs(other, exported, out, weight=share, card=text, force=True)

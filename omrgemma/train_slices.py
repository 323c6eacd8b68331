"""Periodic checks of a training run on small slices of the test sets, read as users read.

The run's own held-out slice (`train_run.heldout_evaluator`) scores the model on the kind of
input it trains on. These slices score what a user gets: whole systems of the GrandStaff-like
set or of real scans, read through the same `omrgemma.evaluate` path as `omrgemma evaluate`
(a staff-level model reads them staff by staff and the staves are joined), with the current
training parameters. Each slice adds `<set>_ser`, `<set>_cer` and `<set>_valid` (%) to the
evaluation record.

    slices = build_slices({"grandstaff-like": 16, "real-scans": 8}, data_dir())
    evaluator = SliceEvaluator(inner=heldout, recognizer=training_recognizer(...), slices=slices)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from omrgemma.errors import UsageError

# Test sets a training run may check, and why the others are left out: camera-like is the
# GrandStaff-like set photographed, single-staff is what the held-out slice already measures.
SLICE_SETS = ("grandstaff-like", "real-scans")
# Pieces per image: a staff of a 1-4 measure piano system is under 300; a model that loops
# stops here instead of at inference's 1024, so a check costs seconds, not minutes.
MAX_NEW_TOKENS = 512


def parse_slices(text: str) -> dict[str, int]:
    """ "grandstaff-like:16,real-scans:8" -> {"grandstaff-like": 16, "real-scans": 8}; "" -> {}."""
    out: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, count = part.partition(":")
        if name not in SLICE_SETS or not count.isdigit() or int(count) < 1:
            raise UsageError(
                f"--eval-sets: {part!r} is not SET:COUNT",
                hint=f"SET is one of {', '.join(SLICE_SETS)}; e.g. grandstaff-like:16",
            )
        out[name] = int(count)
    return out


def build_slices(sets: Mapping[str, int], data: Path) -> dict[str, list]:
    """The first `count` systems of each named test set (fixed seed: the same every time)."""
    from omrgemma.data import testsets

    return {name: list(testsets.build(name, data, seed=0, limit=n)) for name, n in sets.items()}


def training_recognizer(run_dir: Path, config: Any):
    """A `Recognizer` over the run's tokenizer and model shape, its parameters filled in later."""
    from omrgemma.decode import Greedy
    from omrgemma.recognizer import Recognizer, load_tokenizer, model_unit

    tokenizer = load_tokenizer(Path(run_dir) / "tokenizer.model")
    return Recognizer(
        model_dir=Path(run_dir),
        params=None,
        config=config,
        tokenizer=tokenizer,
        prompt_ids=tuple(tokenizer.encode_prefix("")),
        eos_id=tokenizer.eos_id,
        pad_id=tokenizer.pad_id,
        strategy=Greedy(),
        batch_size=16,
        max_new_tokens=MAX_NEW_TOKENS,
        image_size=config.image_size,
        device="cpu",
        unit=model_unit(config.image_size),
    )


@dataclasses.dataclass(kw_only=True)
class SliceEvaluator:
    """`inner(params)` plus one score per slice. `model_params` turns training parameters into
    the model's (e.g. LoRA factors merged); extra subtrees such as the CTC head are ignored."""

    inner: Callable[[Any], dict[str, Any]]
    recognizer: Any
    slices: dict[str, list]
    model_params: Callable[[Any], Any] = lambda params: params

    def __call__(self, params: Any) -> dict[str, Any]:
        from omrgemma.evaluate import evaluate
        from omrgemma.pipeline.staves import system_reader

        out = dict(self.inner(params))
        reader = system_reader(
            dataclasses.replace(self.recognizer, params=self.model_params(params))
        )
        for name, examples in self.slices.items():
            totals = evaluate(reader, examples, set_name=name, music=False, keep_worst=0).overall
            out[f"{name}_ser"] = totals.counts.ser
            out[f"{name}_cer"] = totals.counts.cer
            out[f"{name}_valid"] = 100.0 * totals.valid / max(totals.examples, 1)
        return out

"""The exported model card says what one input image holds: a staff or a whole system."""

from __future__ import annotations

import dataclasses
import json

import pytest

from omrgemma.config import TINY
from omrgemma.train import TrainConfig
from omrgemma.train_run import DataSettings, model_card


@pytest.mark.parametrize(
    ("size", "unit"), [((64, 512), "staff"), ((224, 224), "system")]
)  # fmt: skip
def test_the_card_names_the_unit_the_model_reads(tmp_path, size, unit):
    model = dataclasses.replace(TINY, image_size=size, patch_size=(16, 16))
    run = {
        "model": model.to_dict(),
        "data": dataclasses.asdict(DataSettings()),
        "train": dataclasses.asdict(TrainConfig()),
    }
    (tmp_path / "run.json").write_text(json.dumps(run))
    card = model_card(tmp_path)
    assert f"reads one engraved {unit} and writes" in card
    assert f"(height x width) grey {unit} image" in card
    other = {"staff": "system", "system": "staff"}[unit]
    assert f"grey {other} image" not in card

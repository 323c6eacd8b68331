"""Test-set slices checked during training: option parsing, and scores of the current params."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from omrgemma.data.testsets import Example
from omrgemma.errors import UsageError
from omrgemma.train_slices import SliceEvaluator, parse_slices

SYSTEM = "**kern\t**kern\n*clefF4\t*clefG2\n4C\t4c\n=\t=\n*-\t*-\n"


@dataclasses.dataclass
class Oracle:
    """A recognizer stand-in whose parameters decide what it reads: the truth, or nothing."""

    params: object = None
    unit: str = "system"

    def predict(self, images):
        return [SYSTEM if self.params == "good" else "" for _ in images]


def _slices():
    image = np.full((40, 200), 255, np.uint8)
    example = Example(id="a", collection="piano/test", image=image, kern=SYSTEM)
    return {"grandstaff-like": [example, dataclasses.replace(example, id="b")]}


def test_parse_slices():
    assert parse_slices("grandstaff-like:16, real-scans:8") == {
        "grandstaff-like": 16,
        "real-scans": 8,
    }
    assert parse_slices("") == {}


@pytest.mark.parametrize("text", ["grandstaff:4", "real-scans", "real-scans:0", "single-staff:9"])
def test_a_bad_slice_is_a_usage_error(text):
    with pytest.raises(UsageError, match="SET:COUNT"):
        parse_slices(text)


def test_the_slices_are_read_with_the_current_parameters():
    evaluator = SliceEvaluator(
        inner=lambda params: {"heldout_nll": 1.0}, recognizer=Oracle(), slices=_slices()
    )
    good, bad = evaluator("good"), evaluator("bad")
    assert good["heldout_nll"] == 1.0
    assert good["grandstaff-like_ser"] == 0.0 and good["grandstaff-like_valid"] == 100.0
    assert bad["grandstaff-like_ser"] == 100.0


def test_training_parameters_are_turned_into_model_parameters_first():
    evaluator = SliceEvaluator(
        inner=lambda params: {},
        recognizer=Oracle(),
        slices=_slices(),
        model_params=lambda params: params["merged"],
    )
    assert evaluator({"merged": "good"})["grandstaff-like_ser"] == 0.0


def test_a_real_model_with_a_ctc_head_reads_the_slices(tmp_path):
    import jax

    from omrgemma.config import TINY
    from omrgemma.ctc import CtcSettings
    from omrgemma.kerntok import KernTokenizerSpec, load_processor, train_kern_tokenizer
    from omrgemma.train_run import model_fns
    from omrgemma.train_slices import MAX_NEW_TOKENS, training_recognizer

    model = train_kern_tokenizer([SYSTEM] * 40, KernTokenizerSpec(vocab_size=60))
    (tmp_path / "tokenizer.model").write_bytes(model)
    config = dataclasses.replace(TINY, vocab_size=load_processor(model).get_piece_size())
    params = model_fns(config, CtcSettings(weight=1.0)).init(jax.random.PRNGKey(0))
    assert "ctc" in params
    recognizer = training_recognizer(tmp_path, config)
    assert recognizer.max_new_tokens == MAX_NEW_TOKENS and recognizer.unit == "system"
    evaluator = SliceEvaluator(inner=lambda p: {}, recognizer=recognizer, slices=_slices())
    out = evaluator(params)
    assert set(out) == {"grandstaff-like_ser", "grandstaff-like_cer", "grandstaff-like_valid"}
    assert out["grandstaff-like_ser"] > 0  # random weights do not read the system

"""The dev sets: `real-scans` from held-out movements only, `real-scans-dev`,
`grandstaff-like-dev`, `camera-like-dev` and `single-staff-dev` from training movements only,
and `omrgemma evaluate --set real-scans-dev --beam K`."""

from __future__ import annotations

from omrgemma.data import split, testsets


def test_the_test_and_dev_scans_are_disjoint_halves_of_the_split(shared_data):
    test = testsets.scan_pairs(shared_data)
    dev = testsets.scan_pairs(shared_data, heldout=False)
    assert test and dev
    assert all(split.is_heldout(kern) for kern, _ in test)
    assert not any(split.is_heldout(kern) for kern, _ in dev)
    scans = sorted((shared_data / "scans").glob("*/*.pdf"))
    assert sorted(pdf for _, pdf in test + dev) == scans  # every scan is in exactly one


def test_dev_examples_are_scans_of_training_movements(shared_data):
    examples = list(testsets.build("real-scans-dev", shared_data, limit=3))
    assert len(examples) == 3
    for example in examples:
        movement = example.id.partition("#")[0]
        assert not split.is_heldout(movement)
        assert example.image.ndim == 2 and example.kern.startswith("**kern")


def test_evaluate_passes_the_beam_to_the_recognizer(monkeypatch):
    from omrgemma import evaluate, recognizer
    from omrgemma.pipeline import staves

    seen = {}
    monkeypatch.setattr(recognizer, "load_recognizer", lambda path, **kw: seen.update(kw))
    monkeypatch.setattr(staves, "system_reader", lambda inner: "reader")
    assert evaluate.load_predictor("models/any", beam=4) == "reader"
    assert seen == {"beam": 4}


def test_the_rendered_dev_sets_come_from_training_movements_only(shared_data):
    for name in ("grandstaff-like-dev", "camera-like-dev", "single-staff-dev"):
        examples = list(testsets.build(name, shared_data, limit=2))
        assert len(examples) == 2
        assert not any(split.is_heldout(e.id.partition("#")[0]) for e in examples)
    for systems in (testsets.grandstaff_systems, testsets.single_staff_systems):
        test_ids = {s.id for s in systems(shared_data)}
        dev_ids = {s.id for s in systems(shared_data, heldout=False)}
        assert test_ids and dev_ids and not test_ids & dev_ids

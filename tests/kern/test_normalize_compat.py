"""Normal form (what it drops, that notes survive it) and the converter21/music21 10 shim."""

from __future__ import annotations

from omrgemma.kern.convert import to_score
from omrgemma.kern.normalize import normalize

from .fixtures import FEATURES

NOISY = (
    "!!!COM: Someone\r\n"
    "**kern\t**kern  \r\n"
    "!!LO:LB:g=original\n"
    "*staff2\t*staff1\n"
    "*LO:TX\t*\n"
    "!\t!LO:DY:rj\n"
    "4c  4e \t4g\n"
    ".\t.\n"
    "\n"
    "=1\t=1\n"
    "*-\t*-\n"
)


def test_normal_form_keeps_music_and_references_and_nothing_else():
    assert (
        normalize(NOISY)
        == "!!!COM: Someone\n**kern\t**kern\n*staff2\t*staff1\n4c 4e\t4g\n=1\t=1\n*-\t*-\n"
    )
    assert normalize(NOISY, keep_references=False).startswith("**kern\t**kern\n*staff2")
    assert normalize(normalize(NOISY)) == normalize(NOISY)


def _music(score):
    """(part, measure, offset, pitches or 'rest', quarters) of every note, chord and rest."""
    found = []
    for p, part in enumerate(score.parts):
        for element in part.recurse().notesAndRests:
            pitches = tuple(x.nameWithOctave for x in element.pitches) or "rest"
            found.append((p, element.measureNumber, element.offset, pitches, element.quarterLength))
    return sorted(found, key=repr)


def test_normal_form_converts_to_the_same_notes():
    noisy = FEATURES.replace("=2\t=2\t=2\n", "=2\t=2\t=2\n!!LO:LB:g=z\n!\t!LO:TX:a:t=dolce\t!\n")
    assert "LO:" not in normalize(noisy)
    assert _music(to_score(normalize(noisy))) == _music(to_score(FEATURES))


def test_normal_form_of_a_real_movement_converts_to_the_same_notes(shared_data):
    """Beethoven op. 27 no. 2, ii (C. S. Sapp): reference records, layout comments, **dynam."""
    text = (shared_data / "kern/piano/beethoven-piano-sonatas/sonata14-2.krn").read_text()
    assert "LO:" in text and "!!!" in text
    assert _music(to_score(normalize(text))) == _music(to_score(text))


def test_compat_shim_lets_converter21_read_reference_records(shared_data):
    """music21 10 renamed Metadata._convertValue; converter21 4.0.1 calls the old name."""
    from music21.metadata import Metadata

    from omrgemma.kern import compat

    compat.register()
    assert hasattr(Metadata, "_convertValue")
    path = shared_data / "kern/piano/chopin-preludes/prelude28-07.krn"
    score = to_score(path.read_text(), path=path)
    assert score.metadata.composer and "Chopin" in score.metadata.composer
    assert len(score.parts) == 2

"""Kern to MusicXML/MXL/MIDI/MEI/SVG/PNG: the music survives (checked by re-reading MusicXML)."""

from __future__ import annotations

import io
import zipfile
from fractions import Fraction

import pytest

from omrgemma.errors import KernError, OutputExistsError
from omrgemma.kern.convert import convert, score_to_musicxml, to_score, write_outputs

from .fixtures import FEATURES, PIANO


@pytest.fixture(scope="module")
def reread():
    """FEATURES -> converter21 -> MusicXML -> music21: the score a MusicXML reader would see."""
    from music21 import converter

    xml = score_to_musicxml(to_score(FEATURES))
    return converter.parseData(xml.decode("utf-8"), format="musicxml")


def _notes(part):
    return list(part.recurse().notesAndRests)


def test_two_staves_with_a_brace_and_three_measures(reread):
    from music21 import layout

    assert len(reread.parts) == 2
    assert [len(p.getElementsByClass("Measure")) for p in reread.parts] == [3, 3]
    groups = list(reread.getElementsByClass(layout.StaffGroup))
    assert [g.symbol for g in groups] == ["brace"]
    assert len(groups[0].getSpannedElements()) == 2


def test_chord_tie_triplet_and_grace_note(reread):
    treble = _notes(reread.parts[0])
    assert treble[0].isChord and [p.nameWithOctave for p in treble[0].pitches] == ["E4", "G4"]
    tied = [n for n in treble if n.isNote and n.tie is not None]
    assert [(n.nameWithOctave, n.tie.type) for n in tied] == [("F4", "start"), ("F4", "stop")]
    triplet = [n for n in treble if n.quarterLength == Fraction(1, 3)]
    assert [n.nameWithOctave for n in triplet] == ["A4", "B4", "C5"]
    assert all(n.duration.tuplets for n in triplet)
    graces = [n for n in treble if n.duration.isGrace]
    assert [n.nameWithOctave for n in graces] == ["D5"]


def test_clef_key_and_meter_change_in_bar_two(reread):
    from music21 import clef, key, meter

    bass_bar2 = reread.parts[1].getElementsByClass("Measure")[1]
    assert isinstance(bass_bar2.getElementsByClass(clef.Clef)[0], clef.TrebleClef)
    treble_bar2 = reread.parts[0].getElementsByClass("Measure")[1]
    assert treble_bar2.getElementsByClass(key.KeySignature)[0].sharps == 1
    assert treble_bar2.getElementsByClass(meter.TimeSignature)[0].ratioString == "3/4"
    assert treble_bar2.duration.quarterLength == 3


def test_spine_split_becomes_two_voices(reread):
    bar3 = reread.parts[0].getElementsByClass("Measure")[2]
    voices = bar3.voices
    assert len(voices) == 2
    pitches = sorted([n.nameWithOctave for n in v.notes] for v in voices)
    assert pitches == [["E5", "D5", "C5"], ["G4", "F4"]]


def test_dynamics_survive(reread):
    from music21 import dynamics

    marks = [d.value for d in reread.recurse().getElementsByClass(dynamics.Dynamic)]
    assert marks == ["p", "f"]


def test_every_format_and_reference_records():
    """The `!!!` records of FEATURES crashed converter21 on music21 10 before compat.register."""
    out = convert(FEATURES, ["musicxml", "mxl", "midi", "mei", "svg", "png"])
    assert b"Feature check" in out["musicxml"][0]
    assert zipfile.ZipFile(io.BytesIO(out["mxl"][0])).namelist()
    assert out["midi"][0].startswith(b"MThd")
    assert b"<mei" in out["mei"][0]
    assert out["svg"][0].startswith(b"<svg") or b"<svg" in out["svg"][0][:200]
    assert out["png"][0].startswith(b"\x89PNG")


def test_midi_has_every_sounding_pitch():
    from music21 import converter

    midi = convert(PIANO, ["midi"])["midi"][0]
    back = converter.parseData(midi, format="midi")
    heard = {p.midi for n in back.recurse().notes for p in n.pitches}
    score = to_score(PIANO)
    written = {p.midi for n in score.recurse().notes if not n.duration.isGrace for p in n.pitches}
    assert heard == written and len(written) == 15
    assert back.highestTime == 16  # four 4/4 bars


def test_write_outputs_names_refuses_to_overwrite_and_pages(tmp_path):
    written = write_outputs(PIANO, "piano", tmp_path, ["musicxml", "svg"])
    assert written == {"musicxml": [tmp_path / "piano.musicxml"], "svg": [tmp_path / "piano.svg"]}
    with pytest.raises(OutputExistsError):
        write_outputs(PIANO, "piano", tmp_path, ["musicxml"])
    long_piece = (
        PIANO.replace("==\t==\n*-\t*-\n", "")
        + "=5\t=5\n"
        + "\n".join(f"1C\t1c\n={n}\t={n}" for n in range(6, 80))
        + "\n==\t==\n*-\t*-\n"
    )
    pages = write_outputs(long_piece, "long", tmp_path, ["svg"])["svg"]
    assert len(pages) > 1 and pages[0].name == "long_p001.svg"


def test_garbage_is_a_kern_error():
    with pytest.raises(KernError):
        to_score("**kern\n*-\n")

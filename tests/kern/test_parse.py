"""The pure-Python kern parser: records, spines through manipulators, durations, measures."""

from __future__ import annotations

from fractions import Fraction

import pytest

from omrgemma.kern.parse import Kind, parse
from omrgemma.kern.tokens import parse_token, recip_duration

from .fixtures import MELODY, PIANO


@pytest.mark.parametrize(
    ("recip", "quarters"),
    [
        ("4", Fraction(1)),
        ("8.", Fraction(3, 4)),
        ("4..", Fraction(7, 4)),
        ("12", Fraction(1, 3)),
        ("6", Fraction(2, 3)),
        ("3%2", Fraction(8, 3)),
        ("1", Fraction(4)),
        ("0", Fraction(8)),
        ("00", Fraction(16)),
        ("20", Fraction(1, 5)),
    ],
)
def test_recip_durations_in_quarter_notes(recip, quarters):
    assert recip_duration(recip) == quarters


def test_tokens_notes_chords_graces_ties_and_rests():
    chord = parse_token("4F 4A- 4c")
    assert [n.pitch for n in chord.notes] == ["F", "A-", "c"]
    assert chord.duration == 1
    assert parse_token("8qdd").duration == 0 and parse_token("8qdd").is_grace
    assert parse_token("qqcc#").duration == 0
    tied = parse_token("[2gg")
    assert tied.notes[0].tie_start and not tied.notes[0].tie_end
    assert parse_token("4gg]").notes[0].tie_end
    assert parse_token("4r").is_rest and parse_token("4ryy").notes[0].is_invisible
    assert parse_token("(4.aa-").notes[0].slur_starts == 1
    assert parse_token("4ff')").notes[0].slur_ends == 1
    assert parse_token("24eeJJ").duration == Fraction(1, 6)
    assert parse_token("cc#").malformed  # no duration
    assert parse_token("4cd").malformed  # two pitches
    assert parse_token("4cc%").notes[0].unknown == ""
    assert parse_token("4ccå").notes[0].unknown == "å"
    assert parse_token("4cc#").notes[0].step_octave == ("C", 5)
    assert parse_token("4GG-").notes[0].step_octave == ("G", 2)


def test_record_kinds_and_spine_types():
    doc = parse("!!!COM: Someone\n!! a comment\n" + PIANO)
    assert doc.spine_types == ("**kern", "**kern")
    assert doc.reference("COM") == "Someone"
    kinds = [r.kind for r in doc.records]
    assert kinds[:3] == [Kind.REFERENCE, Kind.GLOBAL_COMMENT, Kind.INTERPRETATION]
    assert kinds.count(Kind.BARLINE) == 5
    assert doc.problems == []
    nulls = parse("**kern\t**kern\n*\t*\n.\t.\n!\t!\n4c\t.\n*-\t*-\n").records
    assert [r.is_null for r in nulls] == [False, True, True, True, False, False]


def test_spine_split_and_merge_give_voice_ids():
    doc = parse(PIANO)
    split = next(r for r in doc.records if r.fields == ("2GG", "4dd", "2b"))
    assert split.spines == ("1", "2.1", "2.2")
    assert split.tracks == (1, 2, 2)
    merge = next(r for r in doc.records if r.fields == ("*", "*v", "*v"))
    assert merge.spines == ("1", "2.1", "2.2")
    final = next(r for r in doc.records if r.kind is Kind.BARLINE and r.fields[0] == "==")
    assert final.spines == ("1", "2")


def test_measures_sum_durations_per_spine():
    doc = parse(PIANO)
    assert [m.number for m in doc.measures] == [1, 2, 3, 4]
    for measure in doc.measures:
        assert set(measure.durations.values()) == {Fraction(4)}, measure
        assert set(measure.meters.values()) == {Fraction(4)}
    assert set(doc.measures[3].durations) == {"1", "2"}  # merged back before the final barline
    melody = parse(MELODY)
    assert [m.durations["1"] for m in melody.measures] == [3, 3, 3, 3]
    assert melody.measures[0].meters == {"1": Fraction(3)}


def test_exchange_add_and_terminate():
    text = "**kern\t**kern\n*x\t*x\n4c\t4d\n*\t*+\n*\t*\t**dynam\n4e\t4f\tp\n*-\t*\t*-\n4g\n*-\n"
    doc = parse(text)
    assert doc.problems == []
    data = [r for r in doc.records if r.kind is Kind.DATA]
    assert data[0].spines == ("2", "1")
    assert data[1].spines == ("2", "1", "3") and data[1].exclusives[2] == "**dynam"
    assert data[2].spines == ("1",)


def test_structural_problems_are_reported_not_raised():
    doc = parse("**kern\t**kern\n4c\t4d\t4e\n4c\n*v\t*\n")
    codes = [(p.line, p.code) for p in doc.problems]
    assert (2, "field-count") in codes and (3, "field-count") in codes
    assert (4, "manipulator") in codes  # a lone *v
    assert (4, "missing-terminator") in codes
    headless = parse("4c\t4d\n*-\t*-\n")
    assert [p.code for p in headless.problems] == ["missing-header"]
    assert headless.records[0].exclusives == ("**kern", "**kern")


def test_non_kern_spines_are_carried_through():
    doc = parse("**kern\t**text\t**fing\n4c\tla\t1\n*-\t*-\t*-\n")
    data = doc.records[1]
    assert data.exclusives == ("**kern", "**text", "**fing")
    assert data.fields == ("4c", "la", "1")
    assert [i for i, _ in data.kern_tokens()] == [0]
    assert doc.to_text().splitlines()[1] == "4c\tla\t1"

"""Validation finds deliberately broken kern; repair fixes typical recogniser damage, and says so."""

from __future__ import annotations

import pytest

from omrgemma.kern.repair import repair
from omrgemma.kern.validate import has_errors, validate

from .fixtures import MELODY, PIANO


def codes(problems, severity=None):
    return [(p.line, p.code) for p in problems if severity is None or p.severity == severity]


def test_clean_fixtures_have_no_problems():
    assert validate(PIANO) == []
    assert validate(MELODY) == []


def test_measure_durations_against_meter_and_between_spines():
    short_bar = MELODY.replace("4.cc\n8b-\n4a\n", "4.cc\n8b-\n")  # bar 2 loses a quarter
    assert codes(validate(short_bar)) == [(14, "measure-duration")]
    lost = PIANO.replace(".\t8eeJ\n", "")  # the treble of bar 1 loses an eighth: bass overlaps
    assert codes(validate(lost), "error") == [(11, "overlap")]
    longer = PIANO.replace("2D\t2dd\n", "2D\t4.dd\n")  # the treble is an eighth short
    assert codes(validate(longer), "error") == [(13, "spine-durations")]
    pickup = "**kern\n*M3/4\n4c\n=1\n2.d\n=2\n4e\n==\n*-\n"  # short first and last bars are fine
    assert validate(pickup) == []


def test_tokens_ties_slurs_and_structure():
    broken = "**kern\t**kern\n4c\t4x%\n[4d\t4e]\n(4e\t4f\n4c\t4d\t4e\n*v\t*\n4c\t4d\n"
    found = codes(validate(broken))
    assert (2, "malformed-token") in found
    assert (3, "tie-unclosed") in found and (3, "tie-unopened") in found
    assert (4, "slur-unclosed") in found
    assert (5, "field-count") in found
    assert (6, "manipulator") in found
    assert (7, "missing-terminator") in found
    assert validate("4c\n*-\n")[0].code == "missing-header"


def test_declared_signifiers_are_not_unknown():
    text = "!!!RDF**kern: å = marked note\n**kern\n4cå\n*-\n"
    assert validate(text) == []
    assert codes(validate(text.replace("!!!RDF**kern: å = marked note\n", ""))) == [
        (2, "unknown-signifier")
    ]


DAMAGED = [
    # (what a recogniser got wrong, the damaged text)
    ("a missing null field", PIANO.replace(".\t4ee\t.\n", ".\t4ee\n")),
    ("an extra field", PIANO.replace("4G\t12ggL\n", "4G\t12ggL\t4c\n")),
    ("no terminator", PIANO.replace("*-\t*-\n", "")),
    ("an unreadable token", PIANO.replace("4B\t4ff#\n", "4B\t4%%\n")),
    ("an unreadable chord note", PIANO.replace("2GG 2G\t4d 4g 4b", "2GG 2G\t4d 4gx# 4&&")),
    ("a tie that never ends", MELODY.replace("4a\n", "[4a\n")),
    ("a tie end with no start", PIANO.replace("4gg]", "4gg")),
    ("a lone merge", PIANO.replace("*\t*v\t*v\n", "*\t*v\t*\n")),
    ("no header", PIANO.replace("**kern\t**kern\n", "")),
    ("empty lines", PIANO.replace("=2\t=2\n", "\n=2\t=2\n\n")),
]


@pytest.mark.parametrize(("damage", "text"), DAMAGED, ids=[d for d, _ in DAMAGED])
def test_repair_removes_every_error_of_typical_damage(damage, text):
    assert has_errors(validate(text)) or any(p.code == "empty-line" for p in validate(text))
    fixed, fixes = repair(text)
    assert fixes, damage
    assert not has_errors(validate(fixed)), (damage, validate(fixed), fixed)


def test_repair_keeps_music_and_reports_each_fix():
    text = PIANO.replace("4B\t4ff#\n", "4B\t4%%\n")
    fixed, fixes = repair(text)
    assert [(f.line, f.code) for f in fixes] == [(17, "malformed-token")]
    assert "4B\t4r\n" in fixed  # a rest of exactly the quarter the measure is missing
    assert fixed.replace("4B\t4r\n", "4B\t4ff#\n") == PIANO
    assert repair(PIANO) == (PIANO, [])


def test_repair_does_not_invent_durations_it_cannot_justify():
    # two spines both lose their only token of bar 1: nothing says how long the bar was
    text = "**kern\t**kern\n%%\t%%\n=\t=\n*-\t*-\n"
    fixed, fixes = repair(text)
    assert fixed.splitlines()[1] == ".\t."
    assert [f.code for f in fixes] == ["malformed-token", "malformed-token"]


def test_repair_pads_with_nulls_and_trims():
    fixed, fixes = repair("**kern\t**kern\n4c\n=1\n*\t*\t*\n4c\t4d\t4e\n*-\t*-\n")
    # the padded spine then holds no note in bar 1: a rest as long as the bar
    assert fixed.splitlines()[1:5] == ["4c\t4r", "=1\t=1", "*\t*", "4c\t4d"]
    assert [f.code for f in fixes] == ["field-count", "spine-durations"] + ["field-count"] * 3


# Two voices of one staff in 3/4, the lower one read a quarter short in bar 1 (a half note for a
# dotted half), as a staff-level model writes them on GrandStaff-like piano systems.
SHORT_VOICE = (
    "**kern\n*M3/4\n*^\n4c\t2G\n4d\t.\n4e\t.\n=\t=\n4f\t2.A\n4g\t.\n4a\t.\n=\t=\n*v\t*v\n*-\n"
)
BAR_2 = "2.d\t2.b\n=\t=\n*-\t*-\n"


@pytest.mark.parametrize(
    ("text", "padded"),
    [
        # the short voice ends where a line already starts: its null there becomes the rest
        (SHORT_VOICE, "4e\t4r"),
        # no line starts where it ends (1 quarter): a new line there, before the next one
        ("**kern\t**kern\n*M3/4\t*M3/4\n4.c\t4g\n8d\t.\n4e\t.\n=\t=\n" + BAR_2, ".\t2r"),
        # nothing starts after it ends: a new line after the measure's last one
        ("**kern\t**kern\n*M3/4\t*M3/4\n2.c\t4g\n.\t4a\n=\t=\n" + BAR_2, ".\t4r"),
    ],
    ids=["on-a-line", "new-line-between", "new-line-at-the-end"],
)
def test_a_spine_read_short_ends_its_measure_with_a_rest(text, padded):
    from fractions import Fraction

    from omrgemma import metrics

    assert "spine-durations" in [code for _, code in codes(validate(text), "error")]
    fixed, fixes = repair(text)
    assert [f.code for f in fixes] == ["spine-durations"]
    assert padded in fixed.splitlines()
    assert not has_errors(validate(fixed)), validate(fixed)
    before, after = metrics.kern_notes(text), metrics.kern_notes(fixed)
    assert {onset for onset, _, _ in before} == {Fraction(-1)}  # music21 could not time it
    assert min(onset for onset, _, _ in after) == Fraction(0)
    assert sum(after.values()) == sum(before.values())  # every note kept
    onsets = {onset for onset, _, _ in after}
    assert Fraction(3) in onsets and not onsets & {Fraction(5, 2), Fraction(7, 2)}  # bar 2 at 3


def test_the_short_voice_rest_makes_the_staff_timeable_for_music21():
    from fractions import Fraction

    from omrgemma import metrics

    before = metrics.kern_notes(SHORT_VOICE)
    assert before is not None and {onset for onset, _, _ in before} == {Fraction(-1)}
    after = metrics.kern_notes(repair(SHORT_VOICE)[0])
    assert sorted(after.elements())[:4] == [
        (Fraction(0), 55, Fraction(2)), (Fraction(0), 60, Fraction(1)),
        (Fraction(1), 62, Fraction(1)), (Fraction(2), 64, Fraction(1)),
    ]  # fmt: skip
    assert (Fraction(3), 57, Fraction(3)) in after  # bar 2's dotted half A, on its downbeat


# The lower voice's second quarter written beside the upper voice's second eighth, not its
# third: a line whose notes start at different times (`overlap`), as the model writes two-voice
# piano staves. Bar 2 is there so that music21 must time bar 1 to place it.
MISALIGNED = "**kern\n*M2/4\n*^\n8c\t4G\n8d\t4A\n8e\t.\n8f\t.\n=\t=\n2c\t2G\n=\t=\n*v\t*v\n*-\n"
REGRIDDED = ["8c\t4G", "8d\t.", "8e\t4A", "8f\t."]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (MISALIGNED, REGRIDDED),
        # a clef change in the lower voice stays just before that voice's next note
        (
            MISALIGNED.replace("8d\t4A\n", "*\t*clefG2\n8d\t4A\n"),
            ["8c\t4G", "8d\t.", "*\t*clefG2", "8e\t4A", "8f\t."],
        ),
    ],
    ids=["notes", "with-a-clef-change"],
)
def test_voices_written_on_the_wrong_lines_are_regridded_by_their_own_durations(text, expected):
    from fractions import Fraction

    from omrgemma import metrics

    assert "overlap" in [code for _, code in codes(validate(text), "error")]
    fixed, fixes = repair(text)
    assert [f.code for f in fixes] == ["overlap"]
    lines = fixed.splitlines()
    assert lines[3 : 3 + len(expected)] == expected
    assert not has_errors(validate(fixed)), validate(fixed)
    notes = metrics.kern_notes(fixed)
    assert (Fraction(1), 57, Fraction(1)) in notes  # the A on beat 2
    assert (Fraction(2), 55, Fraction(2)) in notes  # bar 2 on its downbeat


def test_a_spine_split_among_the_notes_stays_where_its_voice_reaches_it():
    """The lower voice splits after its two quarters, while the upper voice is still on its
    third eighth: the split line goes after the upper voice's last eighth, not before it."""
    from fractions import Fraction

    from omrgemma import metrics

    text = MISALIGNED.replace("8e\t.\n", "8e\t.\n*\t*^\n").replace("8f\t.\n", "8f\t.\t.\n")
    text = text.replace(
        "=\t=\n2c\t2G\n=\t=\n*v\t*v\n", "=\t=\t=\n2c\t2G\t2B\n*\t*v\t*v\n=\t=\n*v\t*v\n"
    )
    assert "overlap" in [code for _, code in codes(validate(text), "error")]
    fixed, fixes = repair(text)
    assert [f.code for f in fixes] == ["overlap"]
    assert fixed.splitlines()[3:8] == [*REGRIDDED, "*\t*^"]
    assert not has_errors(validate(fixed)), validate(fixed)
    notes = metrics.kern_notes(fixed)
    assert (Fraction(1), 57, Fraction(1)) in notes  # the A on beat 2
    assert (Fraction(3, 2), 65, Fraction(1, 2)) in notes  # the upper voice's last eighth
    assert {(Fraction(2), 55, Fraction(2)), (Fraction(2), 59, Fraction(2))} <= set(notes)


def test_voices_merged_at_different_times_are_padded_to_the_later():
    """The upper voice's second eighth stands beside the lower voice's second quarter, and the
    upper voice reaches the merge a quarter early: it gets a quarter rest there."""
    from fractions import Fraction

    from omrgemma import metrics

    text = "**kern\n*M3/4\n*^\n8c\t4G\n8d\t4A\n*v\t*v\n4e\n=\n2.c\n=\n*-\n"
    assert "overlap" in [code for _, code in codes(validate(text), "error")]
    fixed, fixes = repair(text)
    assert fixed.splitlines()[3:8] == ["8c\t4G", "8d\t.", "4r\t4A", "*v\t*v", "4e"]
    assert not has_errors(validate(fixed)), validate(fixed)
    notes = metrics.kern_notes(fixed)
    assert (Fraction(2), 64, Fraction(1)) in notes and (Fraction(3), 60, Fraction(3)) in notes


def test_a_measure_with_a_spine_exchange_among_its_notes_is_not_regridded():
    text = MISALIGNED.replace("8e\t.\n", "8e\t.\n*x\t*x\n")
    assert "overlap" in [code for _, code in codes(validate(text), "error")]
    fixed, fixes = repair(text)
    assert "overlap" not in [f.code for f in fixes]
    assert fixed.splitlines()[3:5] == ["8c\t4G", "8d\t4A"]  # left as written

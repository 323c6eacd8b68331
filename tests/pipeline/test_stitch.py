"""Stitching per-system kern into one score (inline fixtures, written for these tests)."""

from __future__ import annotations

from fractions import Fraction

from omrgemma.kern.parse import parse
from omrgemma.kern.validate import validate
from omrgemma.pipeline.stitch import LINE_BREAK, PAGE_BREAK, SystemKern, recip, stitch

# Two systems of a 3/4 piano piece, as the snippet cutter writes them: full header each time,
# the first ends with its closing barline, the second repeats it and changes the key.
FIRST = """**kern\t**kern
*clefF4\t*clefG2
*k[f#]\t*k[f#]
*M3/4\t*M3/4
=1-\t=1-
2.G\t2.g
=2\t=2
*\t*^
2.G\t4b\t2.d
.\t2cc\t.
*\t*v\t*v
=3\t=3
*-\t*-
"""
SECOND = """**kern\t**kern
*clefF4\t*clefG2
*k[]\t*k[]
*M3/4\t*M3/4
=3\t=3
2.c\t2.e
=4\t=4
*-\t*-
"""


def test_header_kept_once_and_changes_kept():
    score = stitch([SystemKern(text=FIRST), SystemKern(text=SECOND)])
    lines = score.text.splitlines()
    assert lines.count("*clefF4\t*clefG2") == 1
    assert lines.count("*M3/4\t*M3/4") == 1
    assert "*k[]\t*k[]" in lines  # the key change survives, after the system break
    assert lines.index(LINE_BREAK) < lines.index("*k[]\t*k[]")
    assert lines.count("=3\t=3") == 1  # one barline at the join
    assert lines[-1] == "*-\t*-" and lines.count("*-\t*-") == 1
    doc = parse(score.text)
    assert [m.durations["1"] for m in doc.measures] == [Fraction(3)] * 3
    assert not [p for p in validate(score.text) if p.severity == "error"]
    assert score.first_measure == (1, 3) and score.measures == (2, 1)


def test_unchanged_header_dropped_and_page_break():
    same = SECOND.replace("*k[]\t*k[]", "*k[f#]\t*k[f#]")
    score = stitch([SystemKern(text=FIRST), SystemKern(text=same, new_page=True)])
    lines = score.text.splitlines()
    assert PAGE_BREAK in lines and LINE_BREAK not in lines
    assert lines.count("*k[f#]\t*k[f#]") == 1
    assert lines[lines.index(PAGE_BREAK) + 1] == "2.c\t2.e"


def test_open_split_is_merged_before_the_join():
    open_split = FIRST.replace("*\t*v\t*v\n=3\t=3\n*-\t*-\n", "=3\t=3\t=3\n")
    score = stitch([SystemKern(text=open_split), SystemKern(text=SECOND)])
    assert "*\t*v\t*v" in score.text.splitlines()
    assert not [p for p in validate(score.text) if p.code in ("field-count", "manipulator")]


def test_missing_spine_filled_with_rests_on_the_upper_staff_side():
    melody = "**kern\n*clefG2\n4c\n4d\n4e\n=\n"
    score = stitch([SystemKern(text=FIRST), SystemKern(text=melody)])
    assert "2.r\t4c" in score.text.splitlines()  # the melody goes to the right (upper) spine
    assert len(score.problems) == 1 and score.problems[0].startswith("system 2:")
    assert score.exclusives == ("**kern", "**kern")


def test_majority_layout_wins():
    one = "**kern\n4c\n=\n"
    score = stitch([SystemKern(text=one), SystemKern(text=FIRST), SystemKern(text=SECOND)])
    assert score.exclusives == ("**kern", "**kern")
    assert score.problems[0].startswith("system 1:")


def test_unreadable_system_is_reported_not_fatal():
    score = stitch([SystemKern(text=FIRST), SystemKern(text=""), SystemKern(text=SECOND)])
    assert any(p.startswith("system 2: no kern") for p in score.problems)
    assert len(parse(score.text).measures) == 3


def test_recip():
    assert recip(Fraction(4)) == "1"
    assert recip(Fraction(3)) == "2."
    assert recip(Fraction(3, 2)) == "4."
    assert recip(Fraction(1, 2)) == "8"
    assert recip(Fraction(8)) == "0"
    assert recip(Fraction(5, 4)) is None


def test_a_meter_change_its_measures_do_not_bear_out_is_dropped_and_reported():
    # The edition prints 3/4 on the first system only; the model guessed C (4/4) on the second,
    # whose measures last three quarters, as the first system's do.
    guessed = SECOND.replace("*M3/4\t*M3/4", "*M4/4\t*M4/4\n*met(c)\t*met(c)")
    score = stitch([SystemKern(text=FIRST), SystemKern(text=guessed)])
    lines = score.text.splitlines()
    assert "*M4/4\t*M4/4" not in lines and "*met(c)\t*met(c)" not in lines
    assert "*k[]\t*k[]" in lines  # the key change on the same system is kept
    assert any("meter" in p and "system 2" in p for p in score.problems)
    assert not [p for p in validate(score.text) if p.severity == "error"]


def test_a_meter_change_its_measures_bear_out_is_kept():
    # A real change to 2/4 at the system break: the new system's measures last two quarters.
    real = SECOND.replace("*M3/4\t*M3/4", "*M2/4\t*M2/4").replace("2.c\t2.e", "2c\t2e")
    score = stitch([SystemKern(text=FIRST), SystemKern(text=real)])
    lines = score.text.splitlines()
    assert "*M2/4\t*M2/4" in lines
    assert lines.index(LINE_BREAK) < lines.index("*M2/4\t*M2/4")
    assert not any("meter" in p for p in score.problems)
    assert not [p for p in validate(score.text) if p.severity == "error"]

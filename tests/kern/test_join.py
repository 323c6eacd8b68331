"""`join_staves`: per-staff kern (top to bottom) joined into one system, lowest staff first.

The staves are hand-written the way a staff-level model writes one staff (one `**kern` spine,
clef/key/meter, unnumbered barlines, `*-`); each test says which piano situation it stands for.
"""

from __future__ import annotations

from fractions import Fraction

import pytest

from omrgemma import metrics
from omrgemma.kern.join import PADDED, SHORT, join_staves
from omrgemma.kern.parse import Kind, parse
from omrgemma.kern.validate import has_errors, validate

# Right hand: two quarters, then a half note; left hand: a half note, then eighths and a quarter.
UPPER = "**kern\n*clefG2\n*k[]\n*M2/4\n4e\n4g\n=\n2c\n=\n*-\n"
LOWER = "**kern\n*clefF4\n*k[]\n*M2/4\n2C\n=\n8G\n8B\n4G\n=\n*-\n"


def _columns(text: str) -> list[list[str]]:
    """The fields of every record with fields, as columns (spine 1 first)."""
    rows = [r.fields for r in parse(text).records if r.fields]
    return [list(column) for column in zip(*rows, strict=True)]


def _data_rows(text: str) -> list[tuple[str, ...]]:
    return [r.fields for r in parse(text).records if r.kind is Kind.DATA]


def _valid(text: str) -> None:
    errors = [p for p in validate(text) if p.severity == "error"]
    assert not errors, errors


def test_lowest_staff_is_the_first_spine_and_notes_that_start_together_share_a_line():
    joined = join_staves([UPPER, LOWER])
    assert parse(joined.text).spine_types == ("**kern", "**kern")
    lower, upper = _columns(joined.text)
    assert "*clefF4" in lower and "*clefG2" in upper
    assert _data_rows(joined.text) == [
        ("2C", "4e"),  # both start the measure
        (".", "4g"),  # a quarter later: only the right hand
        ("8G", "2c"),
        ("8B", "."),
        ("4G", "."),
    ]
    assert [r.fields for r in parse(joined.text).records if r.kind is Kind.BARLINE] == [
        ("=", "="),
        ("=", "="),
    ]
    assert joined.text.splitlines()[-1] == "*-\t*-"
    assert joined.measures == (2, 2) and joined.problems == ()
    _valid(joined.text)


def test_headers_are_joined_line_by_line():
    lines = join_staves([UPPER, LOWER]).text.splitlines()
    assert lines[:4] == ["**kern\t**kern", "*clefF4\t*clefG2", "*k[]\t*k[]", "*M2/4\t*M2/4"]


def test_staff_numbers_follow_the_page():
    # A staff model saw one staff, so it writes `*staff1` for both; the lower one is staff 2.
    upper, lower = (s.replace("**kern\n", "**kern\n*staff1\n") for s in (UPPER, LOWER))
    lines = join_staves([upper, lower]).text.splitlines()
    assert lines[1] == "*staff2\t*staff1"


def test_the_joined_system_converts_to_two_parts_with_the_right_notes():
    from music21 import converter

    from omrgemma.kern.convert import score_to_musicxml, to_score

    xml = score_to_musicxml(to_score(join_staves([UPPER, LOWER]).text))
    score = converter.parseData(xml.decode("utf-8"), format="musicxml")
    assert len(score.parts) == 2
    assert [len(p.getElementsByClass("Measure")) for p in score.parts] == [2, 2]
    pitches = [[n.nameWithOctave for n in p.recurse().notes] for p in score.parts]
    assert pitches == [["E4", "G4", "C4"], ["C3", "G3", "B3", "G3"]]  # MusicXML: top part first


def test_a_staff_with_fewer_measures_is_padded_with_rests_and_reported():
    short = "**kern\n*clefF4\n*k[]\n*M2/4\n2C\n=\n*-\n"  # the model missed the second measure
    joined = join_staves([UPPER, short])
    assert joined.measures == (2, 1)
    [problem] = joined.problems
    assert problem.code == PADDED and problem.severity == "error"
    assert "staff 2 of 2" in problem.message and "measure 2" in problem.message
    rows = _data_rows(joined.text)
    assert rows[-1] == ("2r", "2c")  # a half-note rest under the right hand's half note
    assert joined.text.splitlines()[problem.line - 1] == "2r\t2c"
    _valid(joined.text)
    doc = parse(joined.text)
    assert [set(m.durations.values()) for m in doc.measures] == [{Fraction(2)}, {Fraction(2)}]


def test_padding_lasts_what_the_other_staff_measure_lasts():
    # 5/4 in the right hand: no single rest lasts five quarters, so a whole and a quarter rest.
    upper = "**kern\n*clefG2\n*M5/4\n1c\n4d\n=\n1e\n4f\n=\n*-\n"
    lower = "**kern\n*clefF4\n*M5/4\n1C\n4D\n=\n*-\n"
    joined = join_staves([upper, lower])
    rows = _data_rows(joined.text)
    assert rows[2:] == [("1r", "1e"), ("4r", "4f")]
    assert [p.code for p in joined.problems] == [PADDED]
    _valid(joined.text)


def test_a_measure_read_too_short_in_one_staff_ends_with_rests_so_the_system_can_be_timed():
    # The left hand's first measure was read as one quarter note where the right hand has two:
    # without the rest, the barline falls while the right hand's G sounds, converter21 cannot
    # time the system and every note of it gets onset -1 (seen on GrandStaff-like systems).
    lower = "**kern\n*clefF4\n*k[]\n*M2/4\n4C\n=\n8G\n8B\n4G\n=\n*-\n"
    joined = join_staves([UPPER, lower])
    assert _data_rows(joined.text)[:2] == [("4C", "4e"), ("4r", "4g")]
    [problem] = joined.problems
    assert problem.code == SHORT and problem.severity == "warning"
    assert "measure 1 of staff 2 of 2" in problem.message and "lasts 1 quarters" in problem.message
    assert joined.text.splitlines()[problem.line - 1] == "=\t="  # the barline it ends at
    _valid(joined.text)
    notes = metrics.kern_notes(joined.text)
    assert notes is not None
    assert sorted(notes.elements()) == [
        (Fraction(0), 48, Fraction(1)), (Fraction(0), 64, Fraction(1)),
        (Fraction(1), 67, Fraction(1)),
        (Fraction(2), 55, Fraction(1, 2)), (Fraction(2), 60, Fraction(2)),
        (Fraction(5, 2), 59, Fraction(1, 2)), (Fraction(3), 55, Fraction(1)),
    ]  # fmt: skip


def test_a_voice_split_staff_read_short_is_padded_in_every_voice():
    upper = "**kern\n*clefG2\n*M3/4\n2.e\n=\n*-\n"
    lower = "**kern\n*clefF4\n*M3/4\n*^\n2C\t4E\n.\t4G\n=\n*v\t*v\n*-\n"  # 2 of 3 quarters
    joined = join_staves([upper, lower])
    assert _data_rows(joined.text) == [("2C", "4E", "2.e"), (".", "4G", "."), ("4r", "4r", ".")]
    assert [p.code for p in joined.problems] == [SHORT]
    _valid(joined.text)
    assert all(onset >= 0 for onset, _, _ in metrics.kern_notes(joined.text))


def test_an_empty_staff_becomes_a_spine_of_rests():
    joined = join_staves([UPPER, ""])
    assert parse(joined.text).spine_types == ("**kern", "**kern")
    assert [row[0] for row in _data_rows(joined.text)] == ["2r", ".", "2r"]
    assert "measures 1-2" in joined.problems[0].message
    _valid(joined.text)


def test_voices_grace_notes_and_a_clef_change_stay_in_their_staff():
    # Right hand split into two voices for one measure, then a grace note; the left hand changes
    # clef at the barline, as a cut piano system may.
    upper = "**kern\n*clefG2\n*M3/4\n*^\n4e\t2c\n4f\t.\n4g\t4d\n*v\t*v\n=\n8qa\n2.g\n=\n*-\n"
    lower = "**kern\n*clefF4\n*M3/4\n2.C\n=\n*clefG2\n2.c\n=\n*-\n"
    joined = join_staves([upper, lower])
    _valid(joined.text)
    lines = joined.text.splitlines()
    assert "*\t*^" in lines and "*\t*v\t*v" in lines
    assert "2.C\t4e\t2c" in lines
    assert lines.index("*clefG2\t*") < lines.index("2.c\t2.g")
    assert lines.index(".\t8qa") + 1 == lines.index("2.c\t2.g")  # grace first, own line
    assert joined.problems == ()


def test_three_staves_keep_page_order_reversed():
    top = UPPER.replace("*clefG2", "*clefC3")
    joined = join_staves([top, UPPER, LOWER])
    header = joined.text.splitlines()[1].split("\t")
    assert header == ["*clefF4", "*clefG2", "*clefC3"]
    _valid(joined.text)


def test_one_staff_passes_through_unchanged():
    joined = join_staves([UPPER])
    assert joined.text == UPPER and joined.measures == (2,) and joined.problems == ()


@pytest.mark.parametrize(
    "upper",
    [
        "4e\n4g\n=\n2c\n=\n",  # no header, no terminator
        "**kern\n*clefG2\n*M2/4\n=\n4e\n4g\n=\n2c\n",  # an opening barline, no closing one
    ],
)
def test_sloppy_staves_still_join_into_valid_kern(upper):
    joined = join_staves([upper, LOWER])
    assert not has_errors([p for p in validate(joined.text) if p.code != "spine-durations"])
    assert parse(joined.text).kern_spine_count == 2
    assert len(parse(joined.text).measures) == 2


def test_headers_pair_clef_with_clef_when_a_staff_leaves_a_line_out():
    top = "**kern\n*staff1\n*clefG2\n*k[b-]\n*M3/4\n4c\n4d\n4e\n=\n*-\n"
    bottom = "**kern\n*clefF4\n*k[b-]\n*M3/4\n*met(c)\n2.C\n=\n*-\n"
    lines = join_staves([top, bottom]).text.splitlines()
    assert lines[:6] == [
        "**kern\t**kern", "*\t*staff1", "*clefF4\t*clefG2", "*k[b-]\t*k[b-]", "*M3/4\t*M3/4",
        "*met(c)\t*",
    ]  # fmt: skip

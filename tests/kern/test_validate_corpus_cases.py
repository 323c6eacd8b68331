"""Legal kern that the validator once called an error, each cut from a corpus file it was found in.

The corpus check (benchmarks/kern_corpus.py) flagged 516 of 3,677 curated files; these are the
readings of the Humdrum rules (as humlib and converter21 apply them) that removed the false
positives. The genuine encoding errors next to them must stay errors, so some tests keep one.
"""

from __future__ import annotations

from fractions import Fraction

from omrgemma.kern.parse import parse
from omrgemma.kern.tokens import parse_token
from omrgemma.kern.validate import validate


def errors(text: str) -> list[tuple[int, str]]:
    return [(p.line, p.code) for p in validate(text) if p.severity == "error"]


def test_a_line_of_null_tokens_moves_no_clock():
    """piano/beethoven-piano-sonatas/sonata14-1.krn, bar 30: line 10 has only a `**dynam` tie
    mark; the triplet after it starts when the one before ends, not when the next note ends."""
    text = (
        "**kern\t**kern\t**dynam\n*M4/4\t*M4/4\t*\n=30\t=30\t=30\n*\t*^\t*\n"
        "1GGG# 1GG#\t4ryy\t12E<L\t.\n.\t.\t12e\t.\n.\t.\t12g#J\t.\n"
        ".\t(4cc#\t12cc#L\t<\n.\t.\t12e\t.\n.\t.\t12g#J\t.\n"
        ".\t4ee\t12eeL\t.\n.\t.\t.\t[\n.\t.\t12e\t.\n.\t.\t12g#J\t>\n"
        ".\t4cc#)\t12cc#L\t.\n.\t.\t12e\t.\n.\t.\t12g#J\t.\n.\t.\t.\t]\n"
        "*\t*v\t*v\t*\n=31\t=31\t=31\n*-\t*-\t*-\n"
    )
    assert errors(text) == []
    assert parse(text).measures[0].durations == {"1": 4, "2": 4}


def test_a_note_may_last_over_a_barline():
    """polish-scores/2-staff/...kk-i-11--001-001...kyrie.krn, bars 1-2: the Canto's long `00dd`
    sounds over the pseudo-barline (`kreska pseudotaktowa`) while the Tenore moves on."""
    text = (
        "**kern\t**kern\n*M2/1\t*M2/1\n=1-\t=1-\n1.G\t00dd\n2G/\t.\n=2\t=2\n"
        "1A\t.\n1B\t.\n=3\t=3\n0c\t0cc\n==\t==\n*-\t*-\n"
    )
    assert errors(text) == []
    assert [m.durations for m in parse(text).measures][:2] == [
        {"1": 8, "2": 16},
        {"1": 8, "2": 8},
    ]


def test_a_voice_that_stops_short_is_still_an_error():
    """voice-piano/erk-liederschatz/erk211.krn, bar 2: the split-off bass voice holds a half
    note in 3/4 and then nothing: a gap the encoding really has."""
    text = (
        "**kern\t**kern\n*M3/4\t*M3/4\n=2\t=2\n*^\t*\n2BB-\t4r\t(8b-L\n.\t.\t8dJ)\n"
        ".\t4F 4B-\t4.f\n.\t4F 4B-\t.\n.\t.\t8b-\n=3\t=3\t=3\n2.BB-\t2.r\t2.b-\n"
        "*v\t*v\t*\n*-\t*-\n"
    )
    assert errors(text) == [(10, "spine-durations")]


def test_merged_voices_go_on_when_either_is_free():
    """piano/chopin-preludes/prelude28-13.krn bar 35 (the merged voice goes on at once, under
    the other voice's held `1.`) and voice-piano/erk-liederschatz/erk405.krn bar 4 (it goes
    on after the held rest)."""
    chopin = (
        "**kern\t**kern\n*M6/4\t*M6/4\n=35\t=35\n*\t*^\n*\t*\t*^\n"
        "8CC#/L\t[2.ee#/\t2.g#\\\t1.Bn 1.e#\n8BB#/\t.\t.\t.\n8D#/\t.\t.\t.\n8C#/\t.\t.\t.\n"
        "8E#/\t.\t.\t.\n8GG#/J\t.\t.\t.\n*\t*\t*v\t*v\n2.CC#\t2ee#/_\t2.a#\\\n"
        ".\t4ee#]\t.\n*\t*v\t*v\n==\t==\n*-\t*-\n"
    )
    erk = (
        "**kern\t**kern\n*M3/4\t*M3/4\n=4\t=4\n(8BB-L\t[4.b- [4.d\n8D\t.\n8FJ\t.\n*\t*^\n"
        "4B-)\t4r\t8b-] 8d]\n*\t*v\t*v\n8r\t8b-\n==\t==\n*-\t*-\n"
    )
    assert errors(chopin) == []
    assert errors(erk) == []


def test_dots_and_accidentals_count_wherever_they_stand():
    """humlib reads `(4A.` (sonata28-1.krn line 35) as a dotted quarter, `8FzF` (sonata22-2.krn
    line 1788) as FF and `4e]-` (chopin-first-editions 028_13-24-1a-C-022.krn) as e-flat."""
    assert parse_token("(4A.").duration == Fraction(3, 2)
    assert parse_token("8FzF").notes[0].pitch == "FF"
    assert parse_token("4e]-").notes[0].pitch == "e-"
    assert errors("**kern\n[8FzF [8CzJ\n4FF] 4C]\n[4e-\n4e]-\n*-\n") == []
    # letters of two notes are still two pitches (chopin-first-editions 003-1-Sm-piano.krn)
    assert parse_token("24ffd#X").malformed == "'24ffd#X': more than one pitch"


def test_linked_ties_cross_staves():
    """chopin-first-editions declare `!!!RDF**kern: N = linked`: `N[` in one staff, `N]` in the
    other (the pattern of 020-1-BH.krn); a plain tie may not cross staves."""
    text = "!!!RDF**kern: N = linked\n**kern\t**kern\nN[2c\t4r\n.\t4r\n4r\t4cN]\n*-\t*-\n"
    assert errors(text) == []
    plain = text.replace("N[", "[").replace("N]", "]").replace("!!!RDF**kern: N = linked\n", "")
    assert [code for _, code in errors(plain)] == ["tie-unclosed", "tie-unopened"]


def test_ties_into_a_second_ending():
    """piano/joplin/something.krn bars 19-21: a tie from before the first ending (`*>B1`) ends
    in it and, in the file's order once more, in the second ending (`*>B2`)."""
    text = (
        "**kern\t**kern\n*>B\t*>B\n=19\t=19\n4c\t[4ff [a [f\n*>B1\t*>B1\n=20\t=20\n"
        "4c\t4ff_ a_ f_\n4c\t4ff] a] f]\n=21:|!\t=21:|!\n*>B2\t*>B2\n4c\t4ff] a] f]\n"
        "==\t==\n*-\t*-\n"
    )
    assert errors(text) == []


def test_unison_ties_in_two_voices_of_one_staff():
    """polish-scores/2-staff/pl-wtm--r-248-n--001_noskowski-zygmunt--serenada.krn bar 2: both
    voices of the upper staff tie an F."""
    text = "**kern\n*^\n[4F/\t[4F\\\n8F/]\t8F\\]\n*v\t*v\n*-\n"
    assert errors(text) == []


def test_continuations_written_with_an_opening_bracket():
    """chopin-first-editions/2-staff/020-1-BH.krn bars 2-4: `[2.cc#_` continues the tie."""
    text = "**kern\n[2.cc#\n=2\n2.cc#_\n=3\n[2.cc#_\n=4\n2.cc#]\n*-\n"
    assert errors(text) == []


def test_one_note_ends_the_ties_of_two_merged_voices():
    """chopin-first-editions/2-staff/021-1a-Sm-003.krn bars 5-6: both voices tie an f into the
    one `2.f]` after `*v`."""
    text = "**kern\n*^\n[>2.f\t4A-\n.\t[4f\n*v\t*v\n2.f]\n*-\n"
    assert errors(text) == []


def test_enharmonic_ties_stay_errors():
    """polish-scores/.../szymanowski-karol--fantaisie-op-14-i.krn bars 9-10: `[8f##` to `4gn]`
    is no tie: both ends are reported."""
    text = "**kern\n[8f##\\J\n=10\n4gnX\\]\n*-\n"
    assert [code for _, code in errors(text)] == ["tie-unclosed", "tie-unopened"]

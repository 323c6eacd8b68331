"""The per-system kern cutter: headers, spine splits, ties over breaks, note conservation."""

from __future__ import annotations

import numpy as np
import pytest

from omrgemma.data.snippets import count_break_marks, cut_at_breaks, cut_by_measures
from omrgemma.kern.parse import parse
from omrgemma.kern.validate import has_errors, validate

# Hand-written after the shape of Beethoven sonata01-1: two staves plus a **dynam spine, a
# system break before bar 3, a tie across it, a voice split in the right hand that is still open
# at the break, and a clef change opening the second system.
MOVEMENT = """!!!COM: Test
**kern\t**kern\t**dynam
*staff2\t*staff1\t*staff1/2
*Ipiano\t*Ipiano\t*Ipiano
*clefF4\t*clefG2\t*
*k[b-]\t*k[b-]\t*
*F:\t*F:\t*
*M2/4\t*M2/4\t*
*MM120\t*MM120\t*
=1\t=1\t=1
4F\t4a\tp
4A\t4cc\t.
=2\t=2\t=2
*\t*^\t*
4c\t[4ff\t4a\t.
4C\t4ff]\t4g\t<
!!LO:LB:g=original
=3\t=3\t=3\t=3
*clefG2\t*\t*\t*
4c\t[4ee\t4g\t.
4d\t4ee]\t4f\t.
*\t*v\t*v\t*
=4\t=4\t=4
2e\t2cc\t.
==\t==\t==
*-\t*-\t*-
"""


def notes(kern: str) -> int:
    return sum(
        1
        for record in parse(kern).records
        for _, token in record.kern_tokens()
        for note in token.notes
        if note.is_note
    )


def test_cut_at_breaks_gives_standalone_systems():
    first, second = cut_at_breaks(MOVEMENT)
    assert first.kern.splitlines()[:5] == [
        "**kern\t**kern",
        "*staff2\t*staff1",
        "*clefF4\t*clefG2",
        "*k[b-]\t*k[b-]",
        "*M2/4\t*M2/4",
    ]
    # the barline after the mark closes the first system; the open split is merged, then ended
    assert first.kern.splitlines()[-3:] == ["=3\t=3\t=3", "*\t*v\t*v", "*-\t*-"]
    # the tie from bar 2 stays whole; **dynam and the *MM/*F:/*I lines are gone
    assert "[4ff\t4a" in first.kern and "p" not in first.kern.split("\n")[5]
    assert "*MM" not in first.kern and "*F:" not in first.kern and "*I" not in first.kern
    # second system: header carries the new clef and re-creates the split right hand
    assert second.kern.splitlines()[:6] == [
        "**kern\t**kern",
        "*staff2\t*staff1",
        "*clefG2\t*clefG2",
        "*k[b-]\t*k[b-]",
        "*M2/4\t*M2/4",
        "*\t*^",
    ]
    assert second.kern.endswith("==\t==\n*-\t*-\n")
    assert (first.measures, second.measures) == (2, 2)


def test_snippets_validate_and_conserve_notes():
    snippets = cut_at_breaks(MOVEMENT)
    for snippet in snippets:
        assert not has_errors(validate(snippet.kern)), snippet.kern
    assert sum(notes(s.kern) for s in snippets) == notes(MOVEMENT) == 18  # bars: 4 + 6 + 6 + 2


def test_tie_over_a_break_loses_its_dangling_halves():
    text = MOVEMENT.replace("4c\t[4ee\t4g", "4c\t4ee]\t4g").replace("4C\t4ff]\t4g", "4C\t[4ff\t4g")
    first, second = cut_at_breaks(text)
    assert "[4ff" not in first.kern and "\t4ff\t4g" in first.kern
    assert "4ee]\t4g" not in second.kern and "\t4ee\t4g" in second.kern
    assert not has_errors(validate(first.kern)) and not has_errors(validate(second.kern))


def test_cut_by_measures_is_seeded_and_sized():
    one = cut_by_measures(MOVEMENT, np.random.default_rng(3), measures=(1, 2))
    two = cut_by_measures(MOVEMENT, np.random.default_rng(3), measures=(1, 2))
    assert [s.kern for s in one] == [s.kern for s in two]
    assert all(1 <= s.measures <= 2 for s in one)
    assert sum(s.measures for s in one) == 4
    singles = cut_by_measures(MOVEMENT, np.random.default_rng(0), measures=(1, 1))
    assert len(singles) == 4
    assert sum(notes(s.kern) for s in singles) == 18


def test_snippets_render_with_verovio():
    from omrgemma.data.render import render_system

    for snippet in cut_at_breaks(MOVEMENT):
        image = render_system(snippet.kern)
        assert image.dtype == np.uint8 and image.ndim == 2
        assert (image < 128).mean() > 0.01  # ink: staff lines and notes


@pytest.mark.parametrize(
    "relpath",
    [
        "piano/beethoven-piano-sonatas/sonata01-1.krn",
        "piano/scarlatti-keyboard-sonatas/L001K514.krn",
    ],
)
def test_real_movements_cut_at_their_marks(shared_data, relpath):
    text = (shared_data / "kern" / relpath).read_text()
    snippets = cut_at_breaks(text)
    assert len(snippets) == 1 + count_break_marks(text) > 5
    assert sum(notes(s.kern) for s in snippets) == notes(text)
    assert all(not has_errors(validate(s.kern)) for s in snippets)
    measured = cut_by_measures(text, np.random.default_rng(0))
    assert sum(notes(s.kern) for s in measured) == notes(text)

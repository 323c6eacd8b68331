"""`split_staves`: a multi-staff system's kern cut into the standalone kern of each staff.

The hand-written systems are small grand-staff measures in the shape the snippet cutter
(`omrgemma.data.snippets`) writes them: `**kern` spines lowest staff first, `*staffN`, clef/key/
meter header, voices split with `*^` and merged with `*v` at the end; each test says which
piano situation it stands for. The real snippets are cut from the piano corpora in
../shared/data/kern/piano (skipped when the corpora are absent).
"""

from __future__ import annotations

import numpy as np
import pytest

from omrgemma.kern.join import join_staves
from omrgemma.kern.parse import Kind, parse
from omrgemma.kern.staves import split_staves, staff_tracks
from omrgemma.kern.validate import validate

# Two 3/4 measures. Right hand: two voices (`*^`), a grace note before the second measure's
# first note; left hand: F clef, then a change to G clef in the second measure; a **dynam spine
# (p, <, f) for both staves, as the Humdrum piano scores write it; a reference record at the top.
SYSTEM = """\
!!!COM: hand-written
**kern\t**kern\t**dynam
*staff2\t*staff1\t*staff1/2
*clefF4\t*clefG2\t*
*k[b-]\t*k[b-]\t*
*M3/4\t*M3/4\t*
*\t*^\t*
4F\t2a\t4c\tp
4A\t.\t4d\t.
4c\t4g\t4e\t<
=\t=\t=\t=
*clefG2\t*\t*\t*
.\t8ccq\t.\t.
2.c\t2cc\t2.f\tf
.\t4b-\t.\t.
=\t=\t=\t=
*\t*v\t*v\t*
*-\t*-\t*-
"""

UPPER = """\
**kern
*staff1
*clefG2
*k[b-]
*M3/4
*^
2a\t4c
.\t4d
4g\t4e
=\t=
8ccq\t.
2cc\t2.f
4b-\t.
=\t=
*v\t*v
*-
"""

LOWER = """\
**kern
*staff1
*clefF4
*k[b-]
*M3/4
4F
4A
4c
=
*clefG2
2.c
=
*-
"""


def _errors(text: str) -> list:
    return [p for p in validate(text) if p.severity == "error"]


def notes_per_measure(text: str) -> list[tuple[tuple[str, ...], ...]]:
    """Per measure with notes, per `**kern` track (left to right), its tokens in line order."""
    doc = parse(text)
    tracks = [t for staff in staff_tracks(doc) for t in sorted(staff)]
    result = []
    for measure in doc.measures:
        records = [r for r in doc.measure_records(measure) if r.kind is Kind.DATA]
        result.append(
            tuple(
                tuple(
                    f
                    for r in records
                    for f, t in zip(r.fields, r.tracks, strict=True)
                    if t == track and f != "."
                )
                for track in tracks
            )
        )
    return result


def test_each_staff_keeps_its_voices_clefs_grace_notes_and_barlines_top_staff_first():
    assert split_staves(SYSTEM) == [UPPER, LOWER]


def test_the_dynam_spine_and_global_records_are_dropped():
    for staff in split_staves(SYSTEM):
        assert set(parse(staff).spine_types) == {"**kern"}
        assert "p" not in staff.split() and "<" not in staff.split() and "!!" not in staff


def test_every_staff_validates():
    for staff in split_staves(SYSTEM):
        assert not _errors(staff), staff


def test_join_inverts_split_line_for_line():
    # join_staves drops nothing but the **dynam spine and the reference record
    without_dynam = "".join(
        "\t".join(line.split("\t")[:-1]) + "\n" for line in SYSTEM.splitlines()[1:]
    )
    assert join_staves(split_staves(SYSTEM)).text == without_dynam


def test_tracks_that_name_one_staff_stay_one_staff():
    # Chopin's prelude 28/1 writes the right hand as two **kern tracks, both `*staff1`.
    system = (
        "**kern\t**kern\t**kern\n*staff2\t*staff1\t*staff1\n*clefF4\t*clefG2\t*clefG2\n"
        "*M2/4\t*M2/4\t*M2/4\n2C\t4e\t8g\n.\t.\t8a\n.\t4f\t4b\n=\t=\t=\n*-\t*-\t*-\n"
    )
    upper, lower = split_staves(system)
    assert parse(upper).spine_types == ("**kern", "**kern")
    assert notes_per_measure(upper) == [(("4e", "4f"), ("8g", "8a", "4b"))]
    assert notes_per_measure(lower) == [(("2C",),)]
    assert not _errors(upper) and not _errors(lower)


def test_without_staff_numbers_every_kern_track_is_a_staff_in_reverse_order():
    system = "**kern\t**kern\t**kern\n4C\t4e\t4g\n=\t=\t=\n*-\t*-\t*-\n"
    assert [notes_per_measure(s) for s in split_staves(system)] == [
        [(("4g",),)],
        [(("4e",),)],
        [(("4C",),)],
    ]


def test_a_lone_staff_comes_back_unchanged_but_for_its_staff_number():
    assert split_staves(LOWER) == [LOWER]
    assert split_staves(LOWER.replace("*staff1", "*staff2")) == [LOWER]


def test_kern_whose_fields_cannot_be_assigned_to_staves_is_refused():
    with pytest.raises(ValueError, match="line 3"):
        split_staves("**kern\t**kern\n4c\t4e\n4d\n*-\t*-\n")


def test_a_merge_of_two_staves_is_refused():
    # Seen in cut Beethoven snippets: `*v` joins the left hand to the right hand's first voice;
    # each staff alone would hold a lone `*v`.
    system = (
        "**kern\t**kern\n*clefF4\t*clefG2\n*M2/4\t*M2/4\n*\t*^\n2C\t2e\t2g\n=\t=\t=\n"
        "*v\t*v\t*\n*-\t*-\n"
    )
    with pytest.raises(ValueError, match="line 7: `\\*v` merges spines of two staves"):
        split_staves(system)


# --- real snippets ------------------------------------------------------------------------------

PIANO = (
    "piano/beethoven-piano-sonatas",
    "piano/joplin",
    "piano/scarlatti-keyboard-sonatas",
    "piano/chopin-preludes",
    "piano/hummel-preludes",
)


@pytest.fixture(scope="module")
def real_systems(shared_data) -> list[str]:
    """About 50 snippets of 1-4 measures from every 20th piano training movement."""
    from omrgemma.data.kern_examples import strip_measure_numbers
    from omrgemma.data.snippets import CutError, cut_by_measures
    from omrgemma.data.split import train_files
    from omrgemma.kern.files import read_kern

    systems: list[str] = []
    for index, path in enumerate(train_files(shared_data, list(PIANO))[::20]):
        try:
            snippets = cut_by_measures(
                read_kern(path), np.random.default_rng(index), measures=(1, 4)
            )
        except CutError:
            continue
        systems += [strip_measure_numbers(s.kern) for s in snippets[::7][:5]]
    assert len(systems) >= 40
    return systems


def test_real_staves_are_single_staff_kern_that_validates(real_systems):
    for system in real_systems:
        staves = split_staves(system)
        assert len(staves) == len(staff_tracks(parse(system))) >= 2
        if _errors(system):
            continue  # an error of the edition stays in its staff
        for staff in staves:
            assert len(staff_tracks(parse(staff))) == 1
            assert not _errors(staff), (system, staff)


def mend_cross_staff_merges(text: str) -> str:
    """`text` with every `*v` line that merges spines of two tracks written as one line per track.

    join_staves writes two staves' `*v` lines that fall together as one line, and adjacent `*v`
    of two staves merge them into one spine (see the xfail test below); the staves asked only
    for merges within themselves. This writes what they asked for, so the round trip below
    checks `split_staves` on every snippet.
    """
    while True:
        doc = parse(text)
        found = next(
            (i for i, r in enumerate(doc.records) if r.kind is Kind.INTERPRETATION and _crosses(r)),
            None,
        )
        if found is None:
            return text
        record = doc.records[found]
        assert set(record.fields) <= {"*", "*v"}, record.text
        groups: list[list[str]] = []
        for i, token in enumerate(record.fields):
            if i and record.tracks[i] == record.tracks[i - 1]:
                groups[-1].append(token)
            else:
                groups.append([token])
        widths = [len(g) for g in groups]
        rows = []
        for g, group in enumerate(groups):
            if "*v" in group:
                fields = [t for h, other in enumerate(groups) for t in (
                    group if h == g else ["*"] * widths[h])]  # fmt: skip
                rows.append("\t".join(fields))
                widths[g] = group.count("*") + 1
        lines = text.split("\n")
        lines[found : found + 1] = rows
        text = "\n".join(lines)


def _crosses(record) -> bool:
    """A run of adjacent `*v` over fields of more than one track."""
    run: set[int] = set()
    for token, track in zip(record.fields, record.tracks, strict=True):
        if token != "*v":
            run = set()
            continue
        run.add(track)
        if len(run) > 1:
            return True
    return False


def test_mending_splits_a_cross_staff_merge_into_one_line_per_staff():
    broken = "**kern\t**kern\n*^\t*^\n4c\t4e\t4g\t4b\n*v\t*v\t*v\t*v\n4c\t4g\n*-\t*-\n"
    assert mend_cross_staff_merges(broken).splitlines()[3:5] == ["*v\t*v\t*\t*", "*\t*v\t*v"]
    assert not _errors(mend_cross_staff_merges(broken))


def test_real_staves_join_back_to_the_same_notes_in_every_measure(real_systems):
    mended = 0
    for system in real_systems:
        staves = split_staves(system)
        joined = join_staves(staves)
        assert joined.problems == ()
        text = mend_cross_staff_merges(joined.text)
        mended += text != joined.text
        assert notes_per_measure(text) == notes_per_measure(system), system
        assert split_staves(text) == staves
    assert mended < len(real_systems) // 10  # the join bug is rare; most pass untouched


def test_join_keeps_voice_merges_of_two_staves_apart():
    # Both hands end a two-voice passage at one barline, as in snippets of the Beethoven
    # sonatas (sonata02-1.krn, sonata06-2.krn) whose round trip lost notes.
    system = (
        "**kern\t**kern\n*clefF4\t*clefG2\n*M2/4\t*M2/4\n*^\t*^\n2C\t2E\t2c\t2e\n=\t=\t=\t=\n"
        "*v\t*v\t*\t*\n*\t*v\t*v\n2D\t2d\n=\t=\n*-\t*-\n"
    )
    joined = join_staves(split_staves(system)).text
    assert not _errors(joined), joined
    assert notes_per_measure(joined) == notes_per_measure(system)


# --- engraving ----------------------------------------------------------------------------------


def staff_line_count(image: np.ndarray) -> int:
    """Horizontal lines running across most of the ink: five per engraved staff."""
    ink = image < 200  # staff lines are thin and anti-aliased
    columns = np.flatnonzero(ink.any(axis=0))
    width = columns[-1] - columns[0] + 1
    rows = ink.sum(axis=1) > 0.9 * width  # beams and rows of ledger lines stop short
    return int(np.count_nonzero(rows[1:] & ~rows[:-1]) + rows[0])


def test_each_staff_engraves_as_one_staff():
    _engrave_one_by_one([SYSTEM])


def test_real_staves_engrave_as_one_staff(real_systems):
    _engrave_one_by_one(real_systems)


def _engrave_one_by_one(systems: list[str]) -> None:
    from omrgemma.data.render import render_system

    for system in systems:
        staves = split_staves(system)
        assert staff_line_count(render_system(system)) == 5 * len(staves)  # the ruler sees all
        for staff in staves:
            assert staff_line_count(render_system(staff)) == 5, staff

"""Long systems read in pieces of a few measures (`omrgemma.pipeline.chunks`, `StaffReader`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pytest

from omrgemma.kern.parse import parse
from omrgemma.kern.validate import has_errors, validate
from omrgemma.pipeline.barlines import measure_count, measure_ends
from omrgemma.pipeline.chunks import concatenate, cut_system, header, piece_sizes
from omrgemma.pipeline.staves import StaffReader, find_system_staves
from omrgemma.recognizer import SystemResult

# Six measures of a piano system, each with its own notes, so pieces can be told apart.
SIX = "**kern\t**kern\n*clefF4\t*clefG2\n*k[]\t*k[]\n*M2/4\t*M2/4\n" + "".join(
    f"4{low}\t4{high}\n4{low}\t8{high}L\n.\t8{high}J\n=\t=\n"
    for low, high in zip("CDEFGA", "cdefga", strict=True)
) + "*-\t*-\n"  # fmt: skip


def _result(kern: str) -> SystemResult:
    """One token per line, each with p = 0.9."""
    pieces = tuple(line + "\n" for line in kern.rstrip("\n").split("\n"))
    return SystemResult(kern=kern, tokens=tuple(range(len(pieces))),
                        token_logprobs=np.full(len(pieces), math.log(0.9), np.float32),
                        pieces=pieces)  # fmt: skip


@pytest.fixture(scope="module")
def six_image() -> np.ndarray:
    from omrgemma.data.render import render_system

    return render_system(SIX)


@pytest.mark.parametrize(("count", "most", "sizes"),
                         [(7, 3, [3, 2, 2]), (8, 4, [4, 4]), (5, 4, [3, 2]), (4, 4, [4]),
                          (1, 3, [1]), (10, 3, [3, 3, 2, 2])])  # fmt: skip
def test_pieces_are_as_few_and_as_even_as_the_limit_allows(count, most, sizes):
    assert piece_sizes(count, most) == sizes


def test_a_long_system_is_cut_after_its_barlines(six_image):
    staves = find_system_staves(six_image)
    ends = measure_ends(six_image, staves)
    assert len(ends) == 6
    pieces = cut_system(six_image, staves, ends, most=4)
    assert [p.measures for p in pieces] == [3, 3]
    first, second = pieces
    assert first.image.shape[1] + second.image.shape[1] <= six_image.shape[1]
    # each piece, with its staves, shows its own three measures
    for piece in pieces:
        assert len(piece.staves) == 2
        assert measure_count(piece.image, piece.staves) == 3
    # the second piece starts past the third barline, the first ends just after it
    assert first.image.shape[1] > ends[2] and second.image.shape[1] < six_image.shape[1] - ends[2]
    assert np.array_equal(first.image, six_image[:, : first.image.shape[1]])


def test_a_short_or_uncounted_system_stays_whole(six_image):
    staves = find_system_staves(six_image)
    ends = measure_ends(six_image, staves)
    for most, given in ((6, ends), (None, ends), (3, [])):
        [piece] = cut_system(six_image, staves, given, most=most)
        assert piece.image is six_image and piece.measures == (len(given) or None)


def test_the_header_is_the_clef_key_and_meter_lines():
    reading = "**kern\n*staff1\n*clefG2\n*k[f#]\n*M3/4\n*met(C)\n*^\n4c\t4e\n*v\t*v\n=\n*-\n"
    assert header(reading) == "**kern\n*staff1\n*clefG2\n*k[f#]\n*M3/4\n*met(C)\n"
    assert header("4c\n=\n*-\n") == ""


def test_a_staffs_pieces_join_into_one_reading():
    start = "**kern\n*clefG2\n*M2/4\n"
    parts = [
        _result(start + "2c\n=\n*^\n4d\t4f\n4e\t4g\n*v\t*v\n=\n*-\n"),
        _result(start + "2e\n=\n*-\n"),
        _result(start + "4f\n4g\n=\n*-\n"),
    ]
    joined = concatenate(parts, ["", start, start])
    assert joined.kern == start + "2c\n=\n*^\n4d\t4f\n4e\t4g\n*v\t*v\n=\n2e\n=\n4f\n4g\n=\n*-\n"
    assert not has_errors(validate(joined.kern)) and len(parse(joined.kern).measures) == 4
    assert "".join(joined.pieces) == joined.kern
    assert len(joined.tokens) == len(joined.token_logprobs) == len(joined.pieces)


def test_a_piece_cut_at_the_budget_keeps_its_whole_lines():
    start = "**kern\n*clefG2\n"
    cut = SystemResult(kern=start + "2c\n=\n4d\n4", tokens=(0, 1, 2, 3, 4, 5, 6),
                       token_logprobs=np.zeros(7, np.float32),
                       pieces=("**kern\n", "*clefG2\n", "2c\n", "=\n", "4d", "\n", "4"),
                       finished=False)  # fmt: skip
    joined = concatenate([cut, _result(start + "2e\n=\n*-\n")], ["", start])
    assert joined.kern == start + "2c\n=\n4d\n2e\n=\n*-\n" and not joined.finished


@dataclass
class PieceReader:
    """A staff model that answers one measure of its own per image: the first pieces' staves
    get a header; a later piece's staff gets the start it was forced to, then its measure."""

    unit: str = "staff"
    image_size: tuple[int, int] = (64, 512)
    calls: list[dict] = field(default_factory=list)

    def recognize(self, images, starts=None, measures=None):
        self.calls.append(dict(images=len(images), starts=starts, measures=measures))
        call = len(self.calls)
        answers = []
        for i in range(len(images)):
            clef = "*clefF4" if i % 2 else "*clefG2"
            start = starts[i] if starts else f"**kern\n{clef}\n*M2/4\n"
            answers.append(_result(f"{start}2r{call}\n=\n*-\n".replace("2r1", "2r")))
        return answers


def test_the_reader_reads_first_pieces_then_later_ones_begun_with_their_headers(six_image):
    model = PieceReader()
    reader = StaffReader(inner=model, image_size=(1024, 1024), agree_meter=False,
                         piece_measures=4)  # fmt: skip
    [result] = reader.recognize([six_image])
    first, later = model.calls
    assert first == dict(images=2, starts=None, measures=[3, 3])
    assert later["images"] == 2 and later["measures"] == [3, 3]
    assert later["starts"] == ["**kern\n*clefG2\n*M2/4\n", "**kern\n*clefF4\n*M2/4\n"]
    assert [s.kern for s in result.staves] == [
        "**kern\n*clefG2\n*M2/4\n2r\n=\n2r2\n=\n*-\n", "**kern\n*clefF4\n*M2/4\n2r\n=\n2r2\n=\n*-\n"
    ]  # fmt: skip
    assert len(parse(result.kern).measures) == 2 and parse(result.kern).kern_spine_count == 2


def test_without_pieces_or_counts_the_reader_reads_each_staff_once_unbounded(six_image):
    model = PieceReader()
    reader = StaffReader(inner=model, image_size=(1024, 1024), agree_meter=False,
                         piece_measures=None, count_measures=False)  # fmt: skip
    reader.recognize([six_image])
    assert model.calls == [dict(images=2, starts=None, measures=None)]


def test_a_recognizer_without_forced_starts_reads_whole_systems(six_image):
    @dataclass
    class PredictOnly:
        unit: str = "staff"
        image_size: tuple[int, int] = (64, 512)
        calls: list[int] = field(default_factory=list)

        def predict(self, images):
            self.calls.append(len(images))
            return ["**kern\n*clefG2\n2r\n=\n*-\n"] * len(images)

    model = PredictOnly()
    reader = StaffReader(inner=model, image_size=(1024, 1024), agree_meter=False,
                         piece_measures=2)  # fmt: skip
    [kern] = reader.predict([six_image])
    assert model.calls == [2] and len(parse(kern).measures) == 1

"""CER/SER/LER as SMT defines them, the Levenshtein core, and note-level P/R/F1 (hand-computed)."""

from __future__ import annotations

import random
from collections import Counter
from fractions import Fraction

import pytest

from omrgemma import metrics


def dp_levenshtein(a, b):
    """Textbook full-table edit distance: the reference the bit-parallel version must agree with."""
    table = [[i + j if i * j == 0 else 0 for j in range(len(b) + 1)] for i in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            table[i][j] = min(
                table[i - 1][j] + 1,
                table[i][j - 1] + 1,
                table[i - 1][j - 1] + (a[i - 1] != b[j - 1]),
            )
    return table[-1][-1]


def test_levenshtein_known_values():
    assert metrics.levenshtein("kitten", "sitting") == 3  # k->s, e->i, +g
    assert metrics.levenshtein("", "abc") == 3
    assert metrics.levenshtein(["4c", "4d"], ["4c", "4d"]) == 0
    assert metrics.levenshtein(["4c", "=", "4d"], ["4d"]) == 2


def test_levenshtein_agrees_with_full_table_on_random_sequences():
    rng = random.Random(7)
    for _ in range(500):
        a = [rng.choice("abc") for _ in range(rng.randint(0, 90))]
        b = [rng.choice("abcd") for _ in range(rng.randint(0, 90))]
        assert metrics.levenshtein(a, b) == dp_levenshtein(a, b)


def test_units_follow_smt():
    krn = "4c\t4e\n=1\t=1"
    assert metrics.symbols(krn) == ["4c", "<t>", "4e", "<b>", "=1", "<t>", "=1"]
    assert metrics.lines(krn) == ["4c\t4e", "=1\t=1"]
    assert len(metrics.characters(krn)) == 11  # 4c + \t + 4e + \n + =1 + \t + =1


def test_measure_numbers_are_stripped_before_scoring():
    assert metrics.normalize("=12:|!\t=12:|!\n4c") == "=:|!\t=:|!\n4c"
    counts = metrics.edit_counts("=3\n4c", "=7\n4c")
    assert (counts.char_edits, counts.symbol_edits, counts.line_edits) == (0, 0, 0)


def test_rates_on_a_hand_computed_pair():
    ref = "4c\t4e\n4d\t4f"
    hyp = "4c\t4e\n4d\t4g"
    counts = metrics.edit_counts(hyp, ref)
    # characters: ref has 2+1+2+1+2+1+2 = 11; one substitution f->g
    assert (counts.char_edits, counts.char_total) == (1, 11)
    # symbols: 4c <t> 4e <b> 4d <t> 4f = 7; one substitution 4f->4g
    assert (counts.symbol_edits, counts.symbol_total) == (1, 7)
    # lines: 2; the second line differs
    assert (counts.line_edits, counts.line_total) == (1, 2)
    assert counts.cer == pytest.approx(100 / 11)
    assert counts.ser == pytest.approx(100 / 7)
    assert counts.ler == pytest.approx(50.0)


def test_rates_are_micro_averaged_over_the_set():
    refs = ["4c\n4d", "2e"]
    hyps = ["4c", "2e\n4f"]
    counts = metrics.error_rates(hyps, refs)
    # pair 1: chars "4c" vs "4c\n4d": 3 deletions, ref length 5; pair 2: "2e\n4f" vs "2e": 3 insertions, ref 2
    assert (counts.char_edits, counts.char_total) == (6, 7)
    assert counts.cer == pytest.approx(600 / 7)
    # symbols: pair 1 [4c] vs [4c,<b>,4d]: 2 edits / 3; pair 2 [2e,<b>,4f] vs [2e]: 2 edits / 1
    assert (counts.symbol_edits, counts.symbol_total) == (4, 4)
    assert counts.ser == pytest.approx(100.0)
    # lines: pair 1 1 edit / 2, pair 2 1 edit / 1 -> 2 / 3
    assert counts.ler == pytest.approx(200 / 3)


def test_empty_prediction_costs_the_whole_reference():
    counts = metrics.edit_counts("", "4c\n4d")
    # "" has one (empty) line and one (empty) symbol, as SMT's split gives
    assert counts.char_edits == 5
    assert counts.symbol_edits == 3  # [""] vs [4c, <b>, 4d]: 1 substitution + 2 insertions
    assert counts.line_edits == 2  # [""] vs ["4c", "4d"]


def test_note_match_is_a_multiset_intersection():
    q = Fraction(1)
    reference = Counter({(Fraction(0), 60, q): 2, (Fraction(1), 62, q): 1})
    predicted = Counter({(Fraction(0), 60, q): 1, (Fraction(1), 64, q): 1})
    counts = metrics.match_notes(predicted, reference)
    # matched 1 (one C4 of two); predicted 2; reference 3
    assert (counts.matched, counts.predicted, counts.reference) == (1, 2, 3)
    assert counts.precision == pytest.approx(0.5)
    assert counts.recall == pytest.approx(1 / 3)
    assert counts.f1 == pytest.approx(2 * 0.5 * (1 / 3) / (0.5 + 1 / 3))  # = 0.4


MELODY = "**kern\n*clefG2\n*M3/4\n4c\n8d\n8e\n4f\n=\n2.g\n==\n*-\n"
"""Hand-written: C4 quarter, D4 E4 eighths, F4 quarter | G4 dotted half."""


def test_kern_notes_reads_onsets_pitches_durations():
    notes = metrics.kern_notes(MELODY)
    half = Fraction(1, 2)
    assert notes == Counter(
        {
            (Fraction(0), 60, Fraction(1)): 1,
            (Fraction(1), 62, half): 1,
            (Fraction(3, 2), 64, half): 1,
            (Fraction(2), 65, Fraction(1)): 1,
            (Fraction(3), 67, Fraction(3)): 1,
        }
    )


def test_note_counts_of_a_wrong_pitch_and_an_unreadable_hypothesis():
    reference = metrics.kern_notes(MELODY)
    wrong = MELODY.replace("4f", "4a")  # one of 5 notes wrong
    counts = metrics.note_counts(wrong, reference)
    assert (counts.matched, counts.predicted, counts.reference) == (4, 5, 5)
    assert counts.f1 == pytest.approx(0.8)
    broken = metrics.note_counts("", reference)
    assert (broken.matched, broken.predicted, broken.reference) == (0, 0, 5)
    assert broken.f1 == 0.0

"""WER with jiwer after the documented normalization."""

import math

import pytest
from histbuild import scripted_history

from harness.checks import accuracy
from harness.checks.verdict import Status


def test_normalization_ignores_case_punctuation_and_spacing():
    value, counts = accuracy.word_error_rate("Send the patient home, please.", "send  the PATIENT home please")
    assert value == 0.0 and counts["hits"] == 5


def test_numbers_are_compared_as_written():
    value, _ = accuracy.word_error_rate("take 5 tablets", "take five tablets")
    assert value == pytest.approx(1 / 3)


def test_wer_counts_each_kind_of_error():
    value, counts = accuracy.word_error_rate("a b c d", "a x c d e")
    assert value == pytest.approx(2 / 4)
    assert counts == {"hits": 3, "substitutions": 1, "deletions": 0, "insertions": 1, "reference_words": 4}


def test_empty_sides():
    assert accuracy.word_error_rate("", "")[0] == 0.0
    assert math.isinf(accuracy.word_error_rate("", "words")[0])
    assert accuracy.word_error_rate("two words", "")[0] == 1.0


def test_session_wer_against_expected_text():
    h = scripted_history(n_words=10)
    v = accuracy.wer(h)
    assert v.status is Status.PASS and v.metrics == {"wer": 0.0}


def test_max_wer_exceeded_fails_with_what_was_heard():
    h = scripted_history(n_words=10, emitted="send a patient home with the new dosage and follow".split())
    v = accuracy.wer(h, max_wer=0.05)
    assert v.status is Status.FAIL and "WER 0.100" in v.message and "1 substituted" in v.message
    assert accuracy.wer(h, max_wer=0.2).status is Status.PASS


def test_no_reference_is_unknown():
    h = scripted_history()
    del h.meta["expected_text"]
    assert accuracy.wer(h).status is Status.UNKNOWN


def test_words_for_an_empty_reference_fail():
    h = scripted_history(n_words=3)
    assert accuracy.wer(h, reference="").status is Status.FAIL

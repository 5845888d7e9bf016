"""Integrity checks: lost, doubled, replayed, reordered words and unresolved audio gaps."""

import pytest
from histbuild import SCRIPT, add_fault, at, audio_gap, scripted_history, sort_records

from harness.checks import integrity
from harness.checks.verdict import Status
from harness.history import History
from harness.protocols.events import Ack, Error, Final, Partial, Word

EXPECTED = [SCRIPT.split()[i % 13] for i in range(20)]


def test_expected_scripted_words_cycle_and_drop_the_trailing_partial_word():
    words = integrity.expected_scripted_words("a b c", audio_bytes=9600 * 4 + 100)
    assert words == ["a", "b", "c", "a"]
    with pytest.raises(ValueError, match="script is empty"):
        integrity.expected_scripted_words("  ", 9600)


def test_healthy_session_passes_every_integrity_check():
    h = scripted_history(n_words=20)
    for v in integrity.all_checks(h):
        assert v.status is Status.PASS, v.message
    assert integrity.completeness(h).metrics == {"completeness": 1.0, "lost_words": 0}
    assert integrity.duplicates(h).metrics == {"duplicated_words": 0}


def test_lost_words_are_named_with_their_position_and_context():
    emitted = EXPECTED[:7] + EXPECTED[9:]  # words 7 and 8 ("dosage and") lost
    h = scripted_history(n_words=20, emitted=emitted)
    v = integrity.completeness(h)
    assert v.status is Status.FAIL
    assert v.metrics["lost_words"] == 2 and v.metrics["completeness"] == pytest.approx(18 / 20)
    assert "'dosage and' at words 7-8" in v.message and "after 'with the new'" in v.message
    assert v.evidence["lost"][0]["near_segment"] == 1


def test_min_completeness_tolerates_a_small_loss():
    h = scripted_history(n_words=20, emitted=EXPECTED[:19])
    assert integrity.completeness(h).status is Status.FAIL
    assert integrity.completeness(h, min_completeness=0.9).status is Status.PASS


def test_doubled_word_is_labelled_doubled():
    emitted = EXPECTED[:2] + ["the"] + EXPECTED[2:19]  # "send the the patient"
    v = integrity.duplicates(scripted_history(n_words=20, emitted=emitted))
    assert v.status is Status.FAIL and v.metrics["duplicated_words"] == 1
    assert "doubled 'the'" in v.message and "send the the patient" in v.message


def test_audio_taken_twice_shows_as_extra_cycled_words():
    # no-resume: the replayed audio is taken again, so the script runs on for 5 more words
    emitted = [SCRIPT.split()[i % 13] for i in range(25)]
    v = integrity.duplicates(scripted_history(n_words=20, emitted=emitted), baseline=" ".join(EXPECTED))
    assert v.status is Status.FAIL and v.metrics["duplicated_words"] == 5


def test_a_repeated_segment_is_caught_as_doubled():
    emitted = EXPECTED[:10] + EXPECTED[5:10] + EXPECTED[10:]
    v = integrity.duplicates(scripted_history(n_words=25, emitted=emitted), baseline=" ".join(EXPECTED))
    assert v.metrics["duplicated_words"] == 5 and v.evidence["duplicated"][0]["kind"] == "doubled"


def test_without_a_baseline_word_checks_are_unknown():
    h = scripted_history()
    del h.meta["expected_text"]
    assert integrity.completeness(h).status is Status.UNKNOWN
    assert integrity.duplicates(h).status is Status.UNKNOWN
    assert integrity.completeness(h, baseline="send the patient home with the new dosage and follow").status is Status.PASS


def test_baseline_text_wins_over_expected_text():
    h = scripted_history(n_words=5)
    h.meta["baseline_text"] = "send the patient home"
    assert integrity.duplicates(h).metrics["duplicated_words"] == 1


def test_empty_transcript_loses_every_word():
    h = scripted_history(n_words=5, emitted=[])
    v = integrity.completeness(h)
    assert v.status is Status.FAIL and v.metrics == {"completeness": 0.0, "lost_words": 5}


def _drop_final(h, segment_id):
    h.records = [r for r in h.records if not (r.kind == "event" and r.data["event"]["type"] == "final"
                                              and r.data["event"]["segment_id"] == segment_id)]
    return h


def test_hole_in_segment_ids_fails():
    h = _drop_final(scripted_history(n_words=20), 1)
    v = integrity.segments(h)
    assert v.status is Status.FAIL and "missing segment id(s) 1 (after 0)" in v.message
    assert v.metrics["lost_segments"] == 1


def test_segment_with_partials_but_no_final_after_finalize_fails():
    h = _drop_final(scripted_history(n_words=12), 2)  # the last segment, sent only at finalize
    v = integrity.segments(h)
    assert v.status is Status.FAIL and "partials but no final 2" in v.message


def test_open_segment_while_still_streaming_is_not_lost():
    h = _drop_final(scripted_history(n_words=12, finalize=False), 2)
    assert integrity.segments(h).status is Status.PASS


def test_identical_replay_passes_and_a_differing_one_fails():
    h = scripted_history()
    f0 = h.finals()[0][1]
    h.add_event(Final(0, f0.text, f0.start_ms, f0.end_ms, f0.words), t_ns=at(4000))
    sort_records(h)
    assert integrity.replays(h).status is Status.PASS
    h.add_event(Final(0, "send the patient home", f0.start_ms, f0.end_ms), t_ns=at(4100))
    v = integrity.replays(h)
    assert v.status is Status.FAIL
    assert "segment 0" in v.message and "'send the patient home with'" in v.message and "replayed as 'send the patient home'" in v.message


def test_segment_starting_before_the_previous_ends_fails():
    h = scripted_history(n_words=5, finalize=False)
    h.add_event(Final(0, "a b", 0, 600, (Word("a", 0, 300), Word("b", 300, 600))), t_ns=at(700))
    h.add_event(Final(1, "b c", 300, 900, (Word("b", 300, 600), Word("c", 600, 900))), t_ns=at(1000))
    v = integrity.ordering(h)
    assert v.status is Status.FAIL and "segment 1 starts at 300 ms before segment 0 ends at 600 ms" in v.message


def test_words_out_of_order_fail():
    h = scripted_history(n_words=5, finalize=False)
    h.add_event(Final(0, "a b", 0, 600, (Word("a", 300, 600), Word("b", 0, 300))), t_ns=at(700))
    v = integrity.ordering(h)
    assert v.status is Status.FAIL and "word 'b' at 0 ms comes after 'a' at 300 ms" in v.message


def test_audio_gap_followed_by_resend_passes_and_an_ignored_one_fails():
    h = scripted_history()
    audio_gap(h, 120, 3200)  # chunk 1 (offset 3200) goes out at 150 ms: a resend covering 3200
    sort_records(h)
    assert integrity.audio_gaps(h).status is Status.PASS
    audio_gap(h, 5000, 96000)
    v = integrity.audio_gaps(h)
    assert v.status is Status.FAIL and "expecting offset 96000 was never resent" in v.message


def test_audio_gap_filled_by_the_late_frame_itself_passes():
    # ws-reorder: the frame at 44800 is held back, 48000 arrives first (audio_gap expecting 44800), then
    # the held frame arrives and the server acks past 44800: nothing was skipped, nothing needs resending.
    h = History(session_id="s")
    h.add("audio_sent", t_ns=at(100), offset=44800, length=3200)
    h.add("audio_sent", t_ns=at(200), offset=48000, length=3200)
    h.add_event(Error("audio_gap", "gap", True, {"expected_offset": 44800}), t_ns=at(201))
    without_ack = integrity.audio_gaps(h)
    assert without_ack.status is Status.FAIL  # no proof yet that the held frame arrived
    h.add_event(Ack(48000, 0), t_ns=at(202))
    assert integrity.audio_gaps(h).status is Status.PASS
    # an ack past the gap does not excuse a gap nobody ever sent audio for
    h2 = History(session_id="s2")
    h2.add("audio_sent", t_ns=at(200), offset=48000, length=3200)
    h2.add_event(Error("audio_gap", "gap", True, {"expected_offset": 44800}), t_ns=at(201))
    h2.add_event(Ack(51200, 0), t_ns=at(202))
    assert integrity.audio_gaps(h2).status is Status.FAIL


def test_audio_gap_without_expected_offset_fails():
    h = scripted_history()
    audio_gap(h, 120, None)
    assert integrity.audio_gaps(h).status is Status.FAIL


def test_transcript_words_use_first_copy_and_word_times():
    h = scripted_history(n_words=5, finalize=False)
    h.add_event(Final(0, "Hello, World!", 0, 600, (Word("Hello,", 0, 300), Word("World!", 300, 600))), t_ns=at(700))
    h.add_event(Final(0, "other", 0, 600), t_ns=at(800))
    words = integrity.transcript_words(h)
    assert [(w.word, w.start_ms) for w in words] == [("hello", 0), ("world", 300)]
    assert isinstance(h.events("partial")[0][1], Partial)
    add_fault(h, 0, 10)  # faults do not change word checks
    assert integrity.completeness(h, baseline="hello world").status is Status.PASS


from hypothesis import given, settings, strategies as st  # noqa: E402


@settings(max_examples=40, deadline=None)
@given(st.sets(st.integers(min_value=0, max_value=19), max_size=6))
def test_any_dropped_words_are_counted_exactly(dropped):
    emitted = [w for i, w in enumerate(EXPECTED) if i not in dropped]
    v = integrity.completeness(scripted_history(n_words=20, emitted=emitted), baseline=" ".join(EXPECTED))
    assert v.metrics["lost_words"] == len(dropped)
    assert (v.status is Status.PASS) == (not dropped)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=19), max_size=4, unique=True))
def test_any_doubled_words_are_counted_exactly(doubled):
    emitted = []
    for i, w in enumerate(EXPECTED):
        emitted += [w, w] if i in doubled else [w]
    v = integrity.duplicates(scripted_history(n_words=20, emitted=emitted), baseline=" ".join(EXPECTED))
    assert v.metrics["duplicated_words"] == len(doubled)
    assert all(r["kind"] == "doubled" for r in v.evidence["duplicated"])


def _noted(*notes: dict) -> History:
    h = History(session_id="s-1", meta={"scenario": "unit"})
    for data in notes:
        h.add("note", text="a note", **data)
    return h


def test_final_recovery_says_which_way_each_lost_final_came():
    assert integrity.final_recovery(_noted()).status is Status.PASS
    v = integrity.final_recovery(_noted({"missing": [1, 3]}, {"recovered_segment": 1, "recovered_from": "replay"},
                                        {"recovered_segment": 3, "recovered_from": "record"}))
    assert v.status is Status.PASS
    assert "final 1 by replay on the stream" in v.message
    assert "final 3 from the session's record (GET) after finalize" in v.message


def test_final_recovery_fails_for_a_lost_final_that_never_came_back():
    v = integrity.final_recovery(_noted({"missing": [1, 2]}, {"recovered_segment": 1, "recovered_from": "replay"}))
    assert v.status is Status.FAIL and "final(s) 2 went missing" in v.message

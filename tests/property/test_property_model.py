"""The property suite's model of a session (scenarios/property/property_model.py), on hand-written
step sequences: the offsets it expects, and each symptom it must name."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scenarios" / "property"))

from property_model import Frame, StreamModel, classify  # noqa: E402

from harness.protocols.events import Final, Word  # noqa: E402

SCRIPT = ("alpha", "bravo", "charlie", "delta")
W = 3200  # bytes per word at 100 ms


def model() -> StreamModel:
    return StreamModel(SCRIPT, word_ms=100)


def final(segment_id: int, first_word: int, n: int, text: str | None = None) -> Final:
    words = tuple(Word(SCRIPT[i % 4], i * 100, (i + 1) * 100) for i in range(first_word, first_word + n))
    return Final(segment_id, text or " ".join(w.word for w in words), words[0].start_ms, words[-1].end_ms, words)


def test_offsets_through_a_hand_written_sequence():
    m = model()
    f = m.next_frame(3200)
    assert (f, m.sent(f), m.taken) == (Frame(0, 3200), "tail", 3200)
    m.on_ack(3200, 0)
    f = m.next_frame(1000, overlap=500)  # 500 bytes resent, 1000 new
    assert (f, m.sent(f), m.taken) == (Frame(2700, 1500), "tail", 4200)
    f = m.old_frame(50, 10_000)  # half way in, clipped to what was taken
    assert (f, m.sent(f), m.taken) == (Frame(2100, 2100), "duplicate", 4200)
    f = m.gap_frame(100, 200)
    assert (f, m.sent(f), m.taken) == (Frame(4300, 200), "gap", 4200)
    m.on_gap(4200)
    f = Frame(4200, 300)  # the resend from expected_offset to the gap frame's end
    assert (m.sent(f), m.taken) == ("tail", 4500)
    m.on_ack(4500, 0)
    m.on_final(final(0, 0, 1))
    m.on_ack(4500, W)
    m.synced(4500)
    # Abrupt disconnect: resume after segment -1, so segment 0 must come again.
    m.expect_replay(-1)
    m.on_ready(4500)
    assert m.replay_due == {0}
    m.on_final(final(0, 0, 1))
    m.synced(4500)
    assert m.problems == []
    assert (m.last_segment_id(), m.durable, m.expected_words(), m.transcript_problems()) == (0, W, ["alpha"], [])


def test_classify_follows_the_offset_rule():
    assert classify(100, Frame(0, 100)) == "duplicate"
    assert classify(100, Frame(50, 100)) == "tail"
    assert classify(100, Frame(100, 2)) == "tail"
    assert classify(100, Frame(102, 2)) == "gap"


def test_an_ack_past_the_audio_sent_once_is_doubled_audio():
    m = model()
    m.sent(m.next_frame(4))
    m.sent(m.old_frame(0, 2))
    m.on_ack(6, 0)
    assert m.problems and m.problems[0].startswith("doubled words: ack received_offset 6 is past the 4 bytes")


def test_acks_and_durable_offsets_never_go_backwards():
    m = model()
    m.sent(m.next_frame(8000))
    m.on_ack(6000, 3200)
    m.on_ack(4000, 0)
    assert any("ack went backwards" in p for p in m.problems)
    assert any("durable offset went backwards" in p for p in m.problems)
    m2 = model()
    m2.sent(m2.next_frame(100))
    m2.on_ack(100, 200)
    assert any("durable_offset 200 is past received_offset 100" in p for p in m2.problems)


def test_the_same_audio_in_two_segments_is_doubled_words():
    m = model()
    m.sent(m.next_frame(3 * W))
    m.on_final(final(0, 0, 3))
    m.on_final(final(1, 0, 3))  # a second engine transcribing the same audio
    assert m.problems[0].startswith("doubled words: segment 1 (0-300 ms, 'alpha bravo charlie') transcribes the same")
    assert m.transcript_problems()[0].startswith("doubled words: the transcript has 6 words")


def test_a_replayed_final_must_not_change():
    m = model()
    m.sent(m.next_frame(2 * W))
    m.on_final(final(0, 0, 2))
    m.on_final(final(0, 0, 2, text="alpha delta"))
    assert m.problems[0].startswith("final changed on replay: segment 0")


def test_missing_segments_and_missing_replays_are_lost_finals():
    m = model()
    m.sent(m.next_frame(4 * W))
    m.on_final(final(0, 0, 1))
    m.on_final(final(2, 2, 1))
    m.synced(4 * W)
    assert any("lost finals: segment id(s) 1 never arrived" in p for p in m.problems)
    m2 = model()
    m2.sent(m2.next_frame(2 * W))
    m2.on_final(final(0, 0, 1))
    m2.on_final(final(1, 1, 1))
    m2.expect_replay(0)
    m2.on_ready(2 * W)
    m2.synced(2 * W)
    assert m2.problems == ["lost finals: segment(s) 1 were not replayed after the reconnect"]


def test_resume_below_the_durable_offset_or_past_the_audio_is_refused():
    m = model()
    m.sent(m.next_frame(2 * W))
    m.on_ack(2 * W, W)
    m.on_ready(0)
    assert m.problems and "below the durable offset" in m.problems[0]
    assert m.taken == 2 * W
    m2 = model()
    m2.sent(m2.next_frame(W))
    m2.on_ready(2 * W)
    assert "past the 3200 bytes sent" in m2.problems[0]


def test_a_resume_from_less_than_was_sent_rewinds_the_model():
    m = model()
    m.sent(m.next_frame(2 * W))
    m.on_ack(2 * W, W)
    m.on_ready(W)  # a server that kept only the durable audio: the client resends from there
    assert (m.problems, m.taken, m.next_frame(100)) == ([], W, Frame(W, 100))


def test_gap_errors_must_name_the_servers_offset_and_come_at_all():
    m = model()
    m.sent(m.next_frame(100))
    m.sent(m.gap_frame(10, 10))
    m.on_gap(50)
    assert "audio_gap names expected_offset 50, but the server had taken 100 bytes" in m.problems[0]
    m2 = model()
    frame = m2.gap_frame(10, 10)
    m2.sent(frame)
    m2.gap_unanswered(frame)
    assert m2.problems[0].startswith("audio skipped silently: the frame at offset 10")
    m3 = model()
    m3.on_gap(0)  # no gap was made
    assert m3.problems[0].startswith("lost words: audio_gap")


def test_words_must_be_the_scripts_and_inside_the_audio_sent():
    m = model()
    m.sent(m.next_frame(W))
    wrong = Final(0, "delta", 0, 100, (Word("delta", 0, 100),))
    m.on_final(wrong)
    assert "wrong word: segment 0 has 'delta' at 0-100 ms; the script has 'alpha'" in m.problems[0]
    m2 = model()
    m2.sent(m2.next_frame(W))
    m2.on_final(final(0, 0, 2))
    assert m2.problems[0].startswith("final past the audio: segment 0 ends at 200 ms")


def test_the_transcript_must_hold_every_whole_word_once():
    m = model()
    m.sent(m.next_frame(3 * W + 100))  # a trailing partial word is not emitted
    m.on_final(final(0, 0, 2))
    assert m.expected_words() == ["alpha", "bravo", "charlie"]
    assert m.transcript_problems()[0].startswith("lost words: the transcript has 2 words for the 9700 bytes")
    m.on_final(final(1, 2, 1))
    assert m.transcript_problems() == []


def test_pipeline_events_once_in_order():
    names = ["session_finalized", "refinement_started", "refinement_ready", "analytics_started", "analytics_ready",
             "tasks_started", "tasks_ready", "summary_started", "summary_ready", "post_transcription_reveal",
             "dashboard_refresh"]
    assert StreamModel.pipeline_problems(names, "on the stream") == []
    problems = StreamModel.pipeline_problems(names[:-1] + ["session_finalized"], "on the stream")
    assert "pipeline events on the stream: dashboard_refresh missing" in problems
    assert "pipeline events on the stream: session_finalized sent 2 times" in problems


def test_bad_model_arguments_are_named():
    with pytest.raises(ValueError, match="script is empty"):
        StreamModel(())
    with pytest.raises(ValueError, match="nothing to resend"):
        model().old_frame(0, 10)

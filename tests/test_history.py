"""History: JSON round trip, and the first-send index agrees with a plain scan."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from harness.history import History
from harness.protocols.events import Ack, Final, Word


def naive_send_time(history: History, offset: int) -> int | None:
    for r in history.of_kind("audio_sent"):
        if r.data["offset"] <= offset < r.data["offset"] + r.data["length"]:
            return r.t_ns
    return None


frames = st.lists(st.tuples(st.integers(0, 4000), st.integers(0, 600)), max_size=40)


@settings(max_examples=200, deadline=None)
@given(frames=frames, probes=st.lists(st.integers(0, 5000), max_size=30))
def test_first_send_index_matches_a_scan(frames, probes):
    h = History()
    for i, (offset, length) in enumerate(frames):
        h.add("audio_sent", t_ns=1000 + i, offset=offset, length=length)
    for probe in probes:
        assert h.audio_send_time(probe) == naive_send_time(h, probe)


# Mostly in order, as a real stream is, with gaps and resends: the index's in-order fast path
# and its general path must agree with the scan where they meet.
steps = st.lists(st.tuples(st.sampled_from(["next", "next", "gap", "back"]), st.integers(1, 600)), max_size=40)


@settings(max_examples=200, deadline=None)
@given(steps=steps, probes=st.lists(st.integers(0, 30000), max_size=30))
def test_first_send_index_matches_a_scan_on_mostly_ordered_streams(steps, probes):
    h, end = History(), 0
    for i, (step, length) in enumerate(steps):
        offset = {"next": end, "gap": end + length, "back": max(0, end - length)}[step]
        h.add("audio_sent", t_ns=1000 + i, offset=offset, length=length)
        end = max(end, offset + length)
    for probe in probes:
        assert h.audio_send_time(probe) == naive_send_time(h, probe)


def test_index_follows_records_added_later():
    h = History()
    h.add("audio_sent", t_ns=10, offset=0, length=100)
    assert h.audio_send_time(150) is None
    h.add("audio_sent", t_ns=20, offset=100, length=100)
    h.add("audio_sent", t_ns=30, offset=0, length=200)  # a resend is not a first send
    assert h.audio_send_time(150) == 20 and h.audio_send_time(50) == 10


def test_json_round_trip_keeps_events_and_faults():
    h = History(session_id="s1", meta={"fixture_id": "meeting-01-rms"})
    h.add("audio_sent", t_ns=5, offset=0, length=3200)
    h.add_event(Ack(3200, 0), t_ns=6)
    h.add_event(Final(0, "send the summary", 0, 900, (Word("send", 100, 300, 0.9),)), t_ns=7)
    with h.fault("latency", target="downstream", latency_ms=300):
        pass
    back = History.from_json(h.to_json())
    assert back.session_id == "s1" and back.meta == h.meta
    assert back.transcript() == "send the summary"
    assert back.unique_finals()[0].words[0].word == "send"
    assert back.faults[0].params == {"latency_ms": 300} and back.faults[0].end_ns is not None
    assert back.audio_send_time(100) == 5


def test_events_read_again_after_more_records_include_the_new_ones():
    h = History()
    h.add_event(Final(0, "alpha", 0, 300))
    first = h.finals()
    first.append(first[0])  # a caller's list is its own
    h.add("audio_sent", offset=0, length=3200)  # a record of another kind changes nothing
    assert [f.text for _, f in h.finals()] == ["alpha"]
    h.add_event(Final(1, "bravo", 300, 600))
    assert [f.text for _, f in h.finals()] == ["alpha", "bravo"]
    assert [type(e).__name__ for _, e in h.events()] == ["Final", "Final"]
    h.records.clear()
    assert h.finals() == [] and h.events() == []

"""Units of the server core that need no process: frame rules, state machine, defects, store, tracker."""

from __future__ import annotations

import pytest

from reference_server import tracker as tracker_mod
from reference_server.defects import KNOWN_DEFECTS, DefectSet, UnknownDefect
from reference_server.framing import FrameError, parse_frame, take
from reference_server.session_states import (
    COMPLETED,
    CREATED,
    FINALIZING,
    INTERRUPTED,
    PROCESSING,
    STATES,
    STREAMING,
    InvalidTransition,
    check_transition,
)
from reference_server.store import Store
from reference_server.tracker import Tracker


def frame(offset: int, payload: bytes) -> bytes:
    return offset.to_bytes(8, "little") + payload


# --- frames ----------------------------------------------------------------------------------
def test_parse_frame_reads_the_little_endian_offset() -> None:
    assert parse_frame(frame(2**40, b"\x01\x02"), 4) == (2**40, b"\x01\x02")


@pytest.mark.parametrize("raw, code", [
    (b"", "bad_frame"), (b"\x00" * 7, "bad_frame"), (frame(0, b"\x00"), "bad_frame"),
    (frame(3, b"\x00\x00"), "bad_frame"), (frame(0, b"\x00" * 6), "frame_too_large"),
])
def test_parse_frame_errors(raw: bytes, code: str) -> None:
    with pytest.raises(FrameError) as err:
        parse_frame(raw, 4)
    assert err.value.code == code and str(err.value)


@pytest.mark.parametrize("received, offset, size, kind, taken", [
    (100, 0, 100, "duplicate", 0),
    (100, 50, 50, "duplicate", 0),
    (100, 50, 100, "tail", 50),
    (100, 100, 10, "tail", 10),
    (100, 102, 10, "gap", 0),
    (0, 0, 0, "duplicate", 0),
])
def test_offset_rules(received: int, offset: int, size: int, kind: str, taken: int) -> None:
    decision = take(received, offset, bytes(size))
    assert decision.kind == kind and len(decision.data) == taken


def test_the_tail_is_the_new_bytes() -> None:
    assert take(4, 2, b"abcdef").data == b"cdef"


# --- states ----------------------------------------------------------------------------------
@pytest.mark.parametrize("path", [
    [CREATED, STREAMING, INTERRUPTED, STREAMING, FINALIZING, PROCESSING, COMPLETED],
    [CREATED, FINALIZING, PROCESSING, "failed"],
    [CREATED, STREAMING, FINALIZING],
    [CREATED, STREAMING, INTERRUPTED, FINALIZING],
])
def test_valid_paths(path: list[str]) -> None:
    for a, b in zip(path, path[1:]):
        check_transition("s", a, b)


@pytest.mark.parametrize("a, b", [
    (CREATED, PROCESSING), (CREATED, COMPLETED), (STREAMING, CREATED), (INTERRUPTED, PROCESSING),
    (FINALIZING, STREAMING), (PROCESSING, FINALIZING), (COMPLETED, STREAMING), ("failed", COMPLETED),
    (COMPLETED, COMPLETED), (STREAMING, STREAMING),
])
def test_invalid_transitions_are_refused(a: str, b: str) -> None:
    with pytest.raises(InvalidTransition, match=f"{a} -> {b}"):
        check_transition("s", a, b)


def test_every_state_is_in_the_table() -> None:
    assert len(STATES) == 7


# --- defects ---------------------------------------------------------------------------------
def test_unknown_defect_names_itself_and_the_known_ones() -> None:
    with pytest.raises(UnknownDefect) as err:
        DefectSet.parse(["stream-gap", "gremlins"])
    assert "'gremlins'" in str(err.value) and all(name in str(err.value) for name in KNOWN_DEFECTS)


def test_asking_for_a_misspelled_defect_is_a_bug_not_false() -> None:
    defects = DefectSet.parse(["stream-gap"])
    assert "stream-gap" in defects and "no-resume" not in defects
    with pytest.raises(KeyError):
        _ = "stream_gap" in defects


# --- store -----------------------------------------------------------------------------------
@pytest.fixture
def store(tmp_path) -> Store:
    s = Store(str(tmp_path / "db" / "t.sqlite3"))
    yield s
    s.close()


def _session(store: Store, sid: str = "s1", state: str = CREATED) -> None:
    store.create_session(sid, state=state, engine="scripted", script="a b", metadata={"k": 1},
                         token_hash="h", created_at=1.0)


def test_finals_and_durable_offset_in_one_transaction(store: Store) -> None:
    _session(store)
    final = {"segment_id": 0, "text": "a b", "start_ms": 0, "end_ms": 600, "boundary_offset": 19200,
             "words": [{"word": "a", "start_ms": 0, "end_ms": 300, "confidence": 1.0}]}
    store.add_finals("s1", [final], durable_offset=19200, received_offset=20000, next_segment_id=1)
    row = store.get_session("s1")
    assert (row["durable_offset"], row["received_offset"], row["next_segment_id"]) == (19200, 20000, 1)
    assert store.finals("s1") == [{k: v for k, v in final.items() if k != "boundary_offset"}]
    assert store.finals("s1", after=0) == []
    with pytest.raises(Exception):  # a segment id is written once
        store.add_finals("s1", [final], durable_offset=1, received_offset=1, next_segment_id=1)
    assert store.get_session("s1")["durable_offset"] == 19200  # the failed write changed nothing


def test_recover_after_restart(store: Store) -> None:
    _session(store, "a", STREAMING)
    _session(store, "b", INTERRUPTED)
    store.set_received("a", 5000)
    assert store.recover_after_restart() == 1
    assert store.get_session("a")["state"] == INTERRUPTED
    assert store.get_session("a")["received_offset"] == 0  # back to the durable offset


def test_delete_removes_finals_results_events(store: Store) -> None:
    _session(store)
    store.add_finals("s1", [{"segment_id": 0, "text": "x", "start_ms": 0, "end_ms": 1, "words": [],
                             "boundary_offset": 32}], durable_offset=32, received_offset=32, next_segment_id=1)
    store.put_result("s1", "tasks", {"items": [1]}, task_items=[1])
    store.add_event("s1", "session_finalized", 1.0, {})
    assert store.delete_session("s1")
    assert store.get_session("s1") is None
    assert store.finals("s1") == [] and store.results("s1") == {} and store.events("s1") == []
    assert store.task_items("s1") == []
    assert not store.delete_session("s1")


def test_count_active_ignores_ended(store: Store) -> None:
    _session(store, "a")
    _session(store, "b")
    store.finish("b", COMPLETED, ("dashboard_refresh", 2.0, {}))
    assert store.count_active() == 1
    assert store.events("b")[0]["name"] == "dashboard_refresh"


# --- tracker ---------------------------------------------------------------------------------
class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def monotonic(self) -> float:
        return self.t


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(tracker_mod.time, "monotonic", fake.monotonic)
    return fake


def test_stall_only_when_the_server_owes_work(store: Store, clock: FakeClock) -> None:
    tr = Tracker(store, stall_after_s=5)
    tr.begin("s1")
    clock.t += 60
    assert tr.check_stalls() == []  # waiting for the client is not a stall
    tr.waiting("s1", "pipeline", True)
    clock.t += 4
    assert tr.check_stalls() == []
    clock.t += 2
    assert tr.check_stalls() == ["s1"] and tr.stalled_count == 1
    assert tr.check_stalls() == []  # marked once
    tr.stage("s1", "summary_started")  # progress
    assert tr.stalled_count == 0
    stages = [e["stage"] for e in tr.get("s1").events]
    assert stages[-3:] == ["stalled", "resumed", "summary_started"]
    tr.end("s1", "completed")
    clock.t += 100
    assert tr.check_stalls() == [] and tr.list("ended")[0]["end_reason"] == "completed"
    assert [e["stage"] for e in store.stage_events("s1")][-1] == "ended"


def test_stall_detection_off(store: Store, clock: FakeClock) -> None:
    tr = Tracker(store, stall_after_s=1, detect_stalls=False)
    tr.begin("s1")
    tr.waiting("s1", "pipeline", True)
    clock.t += 100
    assert tr.check_stalls() == [] and tr.stalled_count == 0


def test_invalid_transitions_are_recorded(store: Store) -> None:
    tr = Tracker(store, stall_after_s=1)
    tr.begin("s1")
    tr.invalid_transition("s1", COMPLETED, STREAMING)
    assert tr.invalid_transitions == 1
    assert tr.get("s1").events[-1] == {"stage": "invalid_transition", "at": tr.get("s1").events[-1]["at"],
                                       "data": {"from": COMPLETED, "to": STREAMING}}

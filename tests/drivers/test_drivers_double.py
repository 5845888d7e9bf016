"""Both drivers end to end against the test double (tests/drivers/double_server.py), whose purpose
is to produce exact close codes, drops, lost finals, gaps and replays on demand.

Every case asserts what the session must come out with despite the fault: the exact scripted
transcript (nothing lost, nothing doubled), finals 0..n in order, the pipeline events, and the
reconnects the fault forces.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from double_server import PIPELINE_EVENTS, DoubleServer, Faults

from harness.drivers import asyncio_driver, sync_driver
from harness.drivers.asyncio_driver import AsyncSessionClient
from harness.drivers.session import SessionOutcome, SessionPlan
from harness.drivers.sync_driver import SyncSessionClient
from harness.protocols import SessionParams, StreamTarget, get_codec
from harness.protocols.events import Closed, Error, Final, Ready

WORD = 3200  # 100 ms words
SCRIPT = "one two three four five six seven"
PARAMS = SessionParams(engine="scripted", script=SCRIPT,
                       metadata={"script_word_ms": 100, "script_segment_words": 5})
PCM = bytes(WORD * 23)


def expected_words(n_bytes: int = len(PCM)) -> list[str]:
    words = SCRIPT.split()
    return [words[i % len(words)] for i in range(n_bytes // WORD)]


def run_async(codec, target, plan) -> SessionOutcome:
    return asyncio.run(AsyncSessionClient(codec, target, plan).run())


def run_sync(codec, target, plan) -> SessionOutcome:
    return SyncSessionClient(codec, target, plan).run()


DRIVERS: dict[str, Callable[..., SessionOutcome]] = {"asyncio": run_async, "sync": run_sync}


def plan(**kw) -> SessionPlan:
    base = dict(pcm=PCM, params=PARAMS, pace=0, chunk_ms=100, seed=7, backoff_base_s=0.01, capacity_retry_s=0.05,
                deadline_s=30, finish_timeout_s=10)
    base.update(kw)
    return SessionPlan(**base)


def target(srv: DoubleServer) -> StreamTarget:
    return StreamTarget(srv.http_url, srv.api_key, stream_base_url=srv.ws_url)


def assert_exact_session(out: SessionOutcome) -> None:
    assert out.ok, out.error
    assert out.transcript.split() == expected_words()
    finals = out.history.unique_finals()
    assert [f.segment_id for f in finals] == list(range(len(finals)))
    assert [e.name for _, e in out.history.events("pipeline_event")] == PIPELINE_EVENTS
    assert out.history.events("ack"), "no acks recorded"
    assert out.close_code == 1000
    assert out.state == "completed" and out.final_state["events"] == PIPELINE_EVENTS


@pytest.mark.parametrize("driver", DRIVERS)
def test_clean_session(driver: str) -> None:
    with DoubleServer() as srv:
        out = DRIVERS[driver](get_codec("reference"), target(srv), plan())
    assert_exact_session(out)
    assert out.reconnects == 0
    kinds = [r.kind for r in out.history.records]
    assert kinds[:3] == ["http", "connect", "connected"]
    assert out.history.of_kind("control_sent")[-1].data["message"] == "finalize"
    sent = [(r.data["offset"], r.data["length"]) for r in out.history.of_kind("audio_sent")]
    assert sent == [(i * WORD, WORD) for i in range(23)]
    assert out.history.session_id == out.session_id


FAULTS: dict[str, tuple[dict, int]] = {  # Faults(**kwargs) fresh per test: each fault fires once
    "drop": (dict(drop_after_bytes=WORD * 7), 1),
    "crash-restart": (dict(restart_after_bytes=WORD * 13), 1),
    "close-1011": (dict(close_after_bytes=(WORD * 3, 1011)), 1),
    "close-1001": (dict(close_after_bytes=(WORD * 9, 1001)), 1),
    "lost-final": (dict(lose_final=1), 1),
    "gap": (dict(skip_frame_at=WORD * 4), 0),
    "capacity": (dict(create_503=2, capacity_closes=1), 1),
}


@pytest.mark.parametrize("driver", DRIVERS)
@pytest.mark.parametrize("fault", FAULTS)
def test_faults_leave_the_transcript_exact(driver: str, fault: str) -> None:
    faults, reconnects = FAULTS[fault]
    with DoubleServer(faults=Faults(**faults)) as srv:
        out = DRIVERS[driver](get_codec("reference"), target(srv), plan())
    assert_exact_session(out)
    assert out.reconnects == reconnects
    if fault == "lost-final":
        connects = out.history.of_kind("connect")
        assert connects[1].data["last_segment_id"] == 0
        assert len(out.history.finals()) > len(out.history.unique_finals())  # the replays were recorded
    if fault == "gap":
        assert any(e.code == "audio_gap" for _, e in out.history.events("error"))
    if fault == "capacity":
        assert [r.data["status"] for r in out.history.of_kind("http")][:3] == [503, 503, 201]


@pytest.mark.parametrize("driver", DRIVERS)
def test_not_authorized_stops_without_retrying(driver: str) -> None:
    with DoubleServer(faults=Faults(close_after_bytes=(WORD * 2, 1008))) as srv:
        out = DRIVERS[driver](get_codec("reference"), target(srv), plan())
    assert not out.ok and "close 1008: not authorized" in out.error
    assert out.reconnects == 0 and len(out.history.of_kind("connect")) == 1


@pytest.mark.parametrize("driver", DRIVERS)
def test_http_finalize(driver: str) -> None:
    with DoubleServer() as srv:
        out = DRIVERS[driver](get_codec("reference"), target(srv), plan(finalize="http"))
    assert_exact_session(out)
    paths = [(r.data["method"], r.data["path"]) for r in out.history.of_kind("http")]
    assert ("POST", f"/v1/sessions/{out.session_id}/finalize") in paths
    assert not out.history.of_kind("control_sent")


@pytest.mark.parametrize("driver", DRIVERS)
def test_no_finalize_closes_after_every_byte_is_acked(driver: str) -> None:
    with DoubleServer() as srv:
        out = DRIVERS[driver](get_codec("reference"), target(srv), plan(finalize="none", linger_s=0.05))
    assert out.ok and out.state == "interrupted"
    assert max(e.received_offset for _, e in out.history.events("ack")) == len(PCM)
    assert not out.history.events("pipeline_event")


@pytest.mark.parametrize("driver", DRIVERS)
def test_paced_session_records_pacing(driver: str) -> None:
    with DoubleServer() as srv:
        out = DRIVERS[driver](get_codec("reference"), target(srv), plan(pcm=bytes(WORD * 4), pace=4.0))
    assert out.ok, out.error
    assert out.pacing.count == 4  # every chunk of new audio is measured
    offsets = [r.data["offset"] for r in out.history.of_kind("audio_sent")]
    assert offsets == sorted(offsets)


@pytest.mark.parametrize("driver", DRIVERS)
def test_deepgram_session(driver: str) -> None:
    with DoubleServer() as srv:
        out = DRIVERS[driver](get_codec("deepgram"), target(srv), plan(pcm=bytes(WORD * 10), params=SessionParams()))
    assert out.ok, out.error
    assert out.transcript == "alpha bravo charlie delta echo alpha bravo charlie delta echo"
    assert [f.segment_id for f in out.history.unique_finals()] == [0, 1, 2, 3]
    assert out.session_id and out.history.session_id == out.session_id
    assert out.history.of_kind("control_sent")[-1].data["message"] == "close_stream"
    assert any(e.name == "Metadata" for _, e in out.history.events("info"))


@pytest.mark.parametrize("driver", DRIVERS)
def test_deepgram_net0001_is_an_error_and_a_reconnect(driver: str) -> None:
    with DoubleServer(faults=Faults(deepgram_net0001_after_bytes=WORD * 4)) as srv:
        out = DRIVERS[driver](get_codec("deepgram"), target(srv), plan(pcm=bytes(WORD * 10), params=SessionParams()))
    assert out.reconnects == 1
    assert [e.code for _, e in out.history.events("error")] == ["NET-0001"]
    assert Closed(1011, "NET-0001") in [e for _, e in out.history.events("closed")]


# --- the raw stream helpers ------------------------------------------------------------------
async def test_open_stream_async_second_connection_supersedes_the_first() -> None:
    with DoubleServer() as srv:
        codec, t = get_codec("reference"), target(srv)
        session = await asyncio_driver.create_session(codec, t, PARAMS)
        first = await asyncio_driver.open_stream(codec, t, session)
        assert isinstance(await first.recv(), Ready)
        await first.send_audio(0, bytes(WORD * 2))
        events = await first.recv_until(lambda e: e.type == "ack")
        assert events[-1].received_offset == WORD * 2
        second = await asyncio_driver.open_stream(codec, t, session)
        ready = await second.recv()
        assert isinstance(ready, Ready) and ready.committed_offset == WORD * 2
        closed = [e for e in await first.drain(2.0) if isinstance(e, Closed)]
        assert closed == [Closed(4409, "superseded")]
        assert await first.recv() == closed[0]  # stays closed
        await second.send_raw(b"\x00" * 8 + bytes(WORD))  # a hand-made frame at offset 0: a duplicate head
        await second.send_control("finalize")
        tail = await second.recv_until(lambda e: isinstance(e, Closed), timeout=5)
        assert isinstance(tail[-1], Closed) and tail[-1].code == 1000


def test_open_stream_sync_with_a_wrong_credential_is_closed_1008() -> None:
    with DoubleServer() as srv:
        codec, t = get_codec("reference"), target(srv)
        session = sync_driver.create_session(codec, t, PARAMS)
        with sync_driver.open_stream(codec, t, session, headers={"Authorization": "Bearer wrong"}) as stream:
            assert stream.recv(timeout=5) == Closed(1008, "not authorized")


async def test_open_stream_refused_handshake_names_the_url() -> None:
    codec = get_codec("reference")
    t = StreamTarget("http://127.0.0.1:9", "k")  # discard port: nothing listens
    session = codec.parse_session_created(201, {"session_id": "x", "token": "t", "state": "created"})
    with pytest.raises(asyncio_driver.StreamConnectError, match="ws://127.0.0.1:9/v1/stream"):
        await asyncio_driver.open_stream(codec, t, session, open_timeout=2)


def test_decoded_finals_keep_word_times() -> None:
    with DoubleServer() as srv:
        out = run_sync(get_codec("reference"), target(srv), plan(pcm=bytes(WORD * 5)))
    [first] = out.history.unique_finals()
    assert isinstance(first, Final)
    assert [(w.start_ms, w.end_ms) for w in first.words] == [(i * 100, i * 100 + 100) for i in range(5)]
    assert not [e for _, e in out.history.events("error") if isinstance(e, Error)]

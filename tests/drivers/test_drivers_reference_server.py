"""Both drivers against the real reference server (``python -m reference_server``, scripted
engine), including a crash (SIGKILL) and a graceful restart (close 1001) in mid-stream: the
client must resume from ``ready.committed_offset`` and the transcript must come out exactly as
the script says, as if nothing happened."""

from __future__ import annotations

import asyncio
import threading

import pytest

from harness.drivers import asyncio_driver, sync_driver
from harness.drivers.asyncio_driver import AsyncSessionClient
from harness.drivers.session import SessionOutcome, SessionPlan
from harness.drivers.sync_driver import SyncSessionClient
from harness.protocols import SessionParams, StreamTarget, get_codec
from harness.protocols.events import Closed, Ready
from harness.services import ReferenceServer

WORD = 3200  # 100 ms words
SCRIPT = "one two three four five six seven"
PARAMS = SessionParams(engine="scripted", script=SCRIPT, metadata={"script_word_ms": 100, "script_segment_words": 5})
PIPELINE = ["session_finalized"] + [f"{step}_{phase}" for step in ("refinement", "analytics", "tasks", "summary")
                                    for phase in ("started", "ready")] + ["post_transcription_reveal", "dashboard_refresh"]


def expected_words(n_words: int) -> list[str]:
    words = SCRIPT.split()
    return [words[i % len(words)] for i in range(n_words)]


@pytest.fixture(scope="module")
def server():
    with ReferenceServer(engine="scripted") as srv:
        yield srv


def target_of(srv: ReferenceServer) -> StreamTarget:
    return StreamTarget(srv.url, srv.api_key)


def assert_exact(out: SessionOutcome, n_words: int) -> None:
    assert out.ok, out.error
    assert out.transcript.split() == expected_words(n_words)
    finals = out.history.unique_finals()
    assert [f.segment_id for f in finals] == list(range(len(finals)))
    assert all(a.end_ms <= b.start_ms for a, b in zip(finals, finals[1:]))
    assert [e.name for _, e in out.history.events("pipeline_event")] == PIPELINE
    assert out.history.events("ack") or n_words == 0
    assert out.close_code == 1000 and out.state == "completed"
    assert out.final_state["events"] == PIPELINE


@pytest.mark.parametrize("driver", ["asyncio", "sync"])
def test_clean_session(server: ReferenceServer, driver: str) -> None:
    plan = SessionPlan(pcm=bytes(WORD * 23), params=PARAMS, pace=0, seed=1)
    codec, target = get_codec("reference"), target_of(server)
    if driver == "asyncio":
        out = asyncio.run(AsyncSessionClient(codec, target, plan).run())
    else:
        out = SyncSessionClient(codec, target, plan).run()
    assert_exact(out, 23)
    assert out.reconnects == 0
    assert max(e.received_offset for _, e in out.history.events("ack")) == 23 * WORD


def test_http_finalize(server: ReferenceServer) -> None:
    plan = SessionPlan(pcm=bytes(WORD * 12), params=PARAMS, pace=0, seed=1, finalize="http")
    out = SyncSessionClient(get_codec("reference"), target_of(server), plan).run()
    assert_exact(out, 12)


def test_zero_audio_session_still_runs_the_pipeline(server: ReferenceServer) -> None:
    plan = SessionPlan(pcm=b"", params=PARAMS, pace=0, seed=1)
    out = asyncio.run(AsyncSessionClient(get_codec("reference"), target_of(server), plan).run())
    assert_exact(out, 0)


async def test_a_second_stream_supersedes_the_first(server: ReferenceServer) -> None:
    codec, target = get_codec("reference"), target_of(server)
    session = await asyncio_driver.create_session(codec, target, PARAMS)
    first = await asyncio_driver.open_stream(codec, target, session)
    assert isinstance(await first.recv(), Ready)
    await first.send_audio(0, bytes(WORD * 2))
    await first.recv_until(lambda e: e.type == "ack" and e.received_offset == WORD * 2)
    second = await asyncio_driver.open_stream(codec, target, session)
    ready = await second.recv()
    assert isinstance(ready, Ready) and ready.committed_offset <= WORD * 2
    tail = await first.recv_until(lambda e: isinstance(e, Closed), timeout=10)
    assert tail[-1].code == 4409
    await second.close()


def test_wrong_session_token_is_closed_1008(server: ReferenceServer) -> None:
    codec, target = get_codec("reference"), target_of(server)
    session = sync_driver.create_session(codec, target, PARAMS)
    with sync_driver.open_stream(codec, target, session, headers={"Authorization": "Bearer nope"}) as stream:
        events = stream.recv_until(lambda e: isinstance(e, Closed), timeout=10)
    assert events == [Closed(1008, events[-1].reason)]


@pytest.mark.parametrize("graceful", [False, True], ids=["kill-9", "sigterm-1001"])
def test_resume_after_the_server_restarts_mid_stream(graceful: bool) -> None:
    """Paced audio; once a final is durable the server is killed (or stopped: close 1001) and
    started again on the same port and database. The client reconnects with backoff, resends
    from ready.committed_offset, and the transcript is exact."""
    n_words = 30
    plan = SessionPlan(pcm=bytes(WORD * n_words), params=PARAMS, pace=4.0, seed=3, max_reconnects=12,
                       backoff_base_s=0.1, backoff_cap_s=1.0, deadline_s=90)
    with ReferenceServer(engine="scripted") as srv:
        client = SyncSessionClient(get_codec("reference"), target_of(srv), plan)
        result: list[SessionOutcome] = []
        runner = threading.Thread(target=lambda: result.append(client.run()))
        runner.start()
        try:
            restarted = False
            while runner.is_alive() and not restarted:
                acks = [e for _, e in client.history.events("ack")]
                if acks and acks[-1].durable_offset > 0:
                    srv.restart(graceful=graceful)
                    restarted = True
                runner.join(0.02)
        finally:
            runner.join(120)
    assert restarted, "the session ended before a final was durable"
    out = result[0]
    assert_exact(out, n_words)
    assert out.reconnects >= 1
    closes = [e.code for _, e in out.history.events("closed")]
    assert closes[0] == (1001 if graceful else 1006) and closes[-1] == 1000
    readies = [e for _, e in out.history.events("ready")]
    assert readies[-1].committed_offset > 0  # resumed from the durable offset, not from 0

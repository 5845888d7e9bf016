"""Each server-side planted defect (DEFECTS.md) shows its symptom; the healthy server does not
(the healthy side of each symptom is asserted in the other test modules).

Defects whose symptoms do not touch each other share a server, to keep the suite quick.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from harness.services import ReferenceServer
from srv_client import PIPELINE_ORDER, WORD_BYTES, Api, expected_words, frame, silence

TASK_SCRIPT = "we need to send the report to the client by friday"
GROUP_1 = ("health-lies", "no-stall-detection", "unbounded-transcript", "stream-gap", "pipeline-event-missing",
           "slow-session-create")
GROUP_2 = ("zero-segment-crash", "finalize-http-skips-pipeline", "final-lost-on-close", "client-no-reconnect",
           "console-error")


def _server(defects: tuple[str, ...], *args: str) -> Iterator[ReferenceServer]:
    srv = ReferenceServer(engine="scripted", defects=list(defects), test_hooks=True, extra_args=list(args))
    srv.start()
    yield srv
    srv.close()


@pytest.fixture(scope="module")
def group_1() -> Iterator[ReferenceServer]:
    yield from _server(GROUP_1, "--stall-after", "0.3")


@pytest.fixture(scope="module")
def group_2() -> Iterator[ReferenceServer]:
    yield from _server(GROUP_2)


@pytest.fixture
async def api1(group_1: ReferenceServer) -> AsyncIterator[Api]:
    api = Api(group_1.url, group_1.api_key)
    yield api
    await api.aclose()


@pytest.fixture
async def api2(group_2: ReferenceServer) -> AsyncIterator[Api]:
    api = Api(group_2.url, group_2.api_key)
    yield api
    await api.aclose()


@pytest.fixture
async def solo(start_ref_server, request: pytest.FixtureRequest) -> AsyncIterator[Api]:
    """A server with only the defect named by the test's ``defect`` parameter."""
    srv = start_ref_server(defects=(request.param,))
    api = Api(srv.url, srv.api_key)
    yield api
    await api.aclose()


async def _stream_words(api: Api, n_words: int, script: str | None = None, *, wait_first_final: bool = False):
    s = await api.create(**({"script": script} if script else {}))
    st = await api.stream(s["session_id"])
    await st.recv()
    await st.send_audio(silence(n_words * WORD_BYTES))
    if wait_first_final:
        await st.recv_until(lambda m: m["type"] == "final")
    await st.send_json({"type": "finalize"})
    await st.drain_until_closed()
    return s, st


# --- group 1 --------------------------------------------------------------------------------
async def test_pipeline_event_missing(api1: Api) -> None:
    s, st = await _stream_words(api1, 5)
    assert st.closed.code == 1000
    assert st.event_names() == PIPELINE_ORDER[:-1]
    body = await api1.get(s["session_id"])
    assert body["state"] == "completed" and "dashboard_refresh" not in body["events"]


async def test_stream_gap(api1: Api) -> None:
    _, st = await _stream_words(api1, 15)
    partial_segments = {p["segment_id"] for p in st.of_type("partial")}
    assert 0 in partial_segments and 2 in partial_segments
    assert 1 not in partial_segments  # nothing between the first final and the second
    assert st.final_words() == expected_words(15)


async def test_health_lies(api1: Api) -> None:
    before = (await api1.http.get("/health")).json()["active_connections"]
    s = await api1.create()
    for _ in range(3):
        st = await api1.stream(s["session_id"])
        await st.recv()
        await st.close()
    async with asyncio.timeout(5):
        while (await api1.http.get("/v1/stats")).json()["websocket_connections"] != 0:
            await asyncio.sleep(0.05)
    assert (await api1.http.get("/health")).json()["active_connections"] == before + 3


async def test_unbounded_transcript(api1: Api) -> None:
    before = (await api1.http.get("/health")).json()["active_buffers"]
    for _ in range(2):
        s, _ = await _stream_words(api1, 30)
        await api1.wait_state(s["session_id"])
    # finished sessions still hold every partial and the audio behind it
    assert (await api1.http.get("/health")).json()["active_buffers"] == before + 2


async def test_no_stall_detection(api1: Api) -> None:
    s = await api1.create(metadata={"hold_step": "summary"})
    await api1.finalize(s["session_id"])
    async with asyncio.timeout(5):
        while "summary_started" not in (await api1.get(s["session_id"]))["events"]:
            await asyncio.sleep(0.05)
    await asyncio.sleep(1.5)  # five stall windows, at least one sweep
    stalled = (await api1.http.get("/debug/transactions", params={"status": "stalled"})).json()
    assert stalled["transactions"] == []
    assert (await api1.http.get("/health")).json()["stalled_transactions"] == 0
    await api1.http.post(f"/debug/release/{s['session_id']}")
    await api1.wait_state(s["session_id"])


async def test_slow_session_create(api1: Api) -> None:
    for _ in range(5):
        await api1.create()
    stats = (await api1.http.get("/v1/stats")).json()
    assert stats["high_latency_warnings"] >= 1
    assert any(a["type"] == "slow_session_creation" for a in stats["alerts"])


# --- group 2 --------------------------------------------------------------------------------
async def test_finalize_http_skips_pipeline(api2: Api) -> None:
    s = await api2.create(script=TASK_SCRIPT)
    await api2.finalize(s["session_id"])
    body = await api2.wait_state(s["session_id"])
    assert body["state"] == "completed" and body["events"] == []
    assert body["results"]["summary"] is None
    s, _ = await _stream_words(api2, 5)  # the stream's finalize still runs it
    async with asyncio.timeout(10):
        while (body := await api2.get(s["session_id"]))["events"] != PIPELINE_ORDER:
            await asyncio.sleep(0.05)


async def test_zero_segment_crash(api2: Api) -> None:
    s, _ = await _stream_words(api2, 0)
    body = await api2.wait_state(s["session_id"])
    assert body["state"] == "failed"
    assert set(body["pipeline"].values()) == {"failed"}
    assert body["events"][-2:] == ["post_transcription_reveal", "dashboard_refresh"]
    assert (await api2.http.get("/v1/stats")).json()["sessions_failed_last_hour"] >= 1
    s, _ = await _stream_words(api2, 5)  # with speech the pipeline is fine
    assert (await api2.wait_state(s["session_id"]))["state"] == "completed"


async def test_final_lost_on_close(api2: Api) -> None:
    s, st = await _stream_words(api2, 7, wait_first_final=True)
    assert st.closed.code == 1000
    got = {f["segment_id"] for f in st.of_type("final")}
    body = await api2.wait_state(s["session_id"])
    stored = {f["segment_id"] for f in body["finals"]}
    assert stored == {0, 1} and got == {0}


async def test_live_config_lists_browser_defects(group_2: ReferenceServer) -> None:
    async with httpx.AsyncClient(base_url=group_2.url) as http:
        cfg = (await http.get("/live/config.json")).json()
    assert cfg == {"defects": sorted(GROUP_2), "api_key_hint": None}


# --- one server each ------------------------------------------------------------------------
@pytest.mark.parametrize("solo", ["finalize-not-idempotent"], indirect=True)
async def test_finalize_not_idempotent(solo: Api) -> None:
    api = solo
    s = await api.create(script=TASK_SCRIPT)
    st = await api.stream(s["session_id"])
    await st.recv()
    await st.send_audio(silence(11 * WORD_BYTES))
    await st.acked(11 * WORD_BYTES)
    await asyncio.gather(*(api.finalize(s["session_id"]) for _ in range(10)))
    await st.drain_until_closed()
    await api.wait_state(s["session_id"])
    # Every pipeline run that started reaches its reveal (bounded: a single run ends the wait
    # with the count the assertion below names).
    deadline = asyncio.get_running_loop().time() + 10
    while True:
        body = await api.get(s["session_id"])
        counts = Counter(body["events"])
        done = counts["post_transcription_reveal"] >= counts["session_finalized"] > 1
        if done or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.05)
    assert counts["session_finalized"] > 1 and counts["tasks_ready"] > 1
    items = body["results"]["tasks"]["items"]
    assert items and len(items) == counts["tasks_ready"] * len({i["text"] for i in items})


@pytest.mark.parametrize("solo", ["duplicate-engine-race"], indirect=True)
async def test_duplicate_engine_race(solo: Api) -> None:
    s = await solo.create()
    st = await solo.stream(s["session_id"])
    await st.recv()
    pcm = silence(10 * WORD_BYTES)
    # two first frames together, then the rest
    await st.ws.send(frame(0, pcm[:3200]))
    await st.ws.send(frame(3200, pcm[3200:6400]))
    await st.send_audio(pcm[6400:], start=6400)
    await st.send_json({"type": "finalize"})
    await st.drain_until_closed()
    counts = Counter(st.final_words())
    # every engine that was opened got all the audio: each word comes out once per engine
    assert set(counts) == set(expected_words(10)) and min(counts.values()) >= 2


@pytest.mark.parametrize("solo", ["early-audio-dropped"], indirect=True)
async def test_early_audio_dropped(solo: Api) -> None:
    s = await solo.create()
    st = await solo.stream(s["session_id"])
    await st.recv()
    end = await st.send_audio(silence(10 * WORD_BYTES))
    await st.acked(end)
    await st.send_json({"type": "finalize"})
    await st.drain_until_closed()
    assert not st.of_type("error")  # dropped silently, and acked
    assert len(st.final_words()) < 10


@pytest.mark.parametrize("solo", ["no-resume"], indirect=True)
async def test_no_resume(solo: Api) -> None:
    s = await solo.create()
    st = await solo.stream(s["session_id"])
    await st.recv()
    pcm = silence(8 * WORD_BYTES)
    await st.send_audio(pcm[:4 * WORD_BYTES])
    await st.acked(4 * WORD_BYTES)
    await st.close()
    again = await solo.stream(s["session_id"])
    ready = await again.recv()
    assert ready["committed_offset"] == 0
    await again.send_audio(pcm, start=ready["committed_offset"])
    await again.send_json({"type": "finalize"})
    await again.drain_until_closed()
    body = await solo.get(s["session_id"])
    assert len(body["transcript"].split()) == 12  # 4 words taken twice

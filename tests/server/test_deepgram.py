"""The Deepgram-compatible stream (/v1/listen) end to end with the harness's own client: the
``deepgram`` codec and ``AsyncSessionClient`` against a real server process, PocketSphinx on a
committed flite fixture and the scripted engine for exact words; plus what the driver cannot show
(UtteranceEnd on a pause, KeepAlive, an HTTP finalize meanwhile, handshake refusals) over raw
WebSockets, and the endpoint's pure parts."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import websockets
from starlette.datastructures import QueryParams

from harness.audio import load_manifest
from harness.checks.accuracy import word_error_rate
from harness.drivers.asyncio_driver import AsyncSessionClient
from harness.drivers.session import SessionOutcome, SessionPlan
from harness.protocols import SessionParams, StreamTarget, get_codec
from harness.protocols.deepgram import DeepgramCodec
from harness.protocols.events import Closed, Info
from harness.services import ReferenceServer
from reference_server.wire.deepgram import ListenOptions, UtteranceEnds
from reference_server.sessions import SessionError
from srv_client import PIPELINE_ORDER, SCRIPT, WORD_BYTES, expected_words, silence

FIXTURE = load_manifest().get("meeting-01-rms")


@pytest.fixture(scope="module")
def server() -> Iterator[ReferenceServer]:
    """PocketSphinx by default (what a Deepgram client gets); scripted on request (model=scripted)."""
    with ReferenceServer(engine="pocketsphinx") as srv:
        yield srv


@pytest.fixture(scope="module")
def impatient_server() -> Iterator[ReferenceServer]:
    """NET-0001 after 1 s instead of Deepgram's 10 s."""
    with ReferenceServer(engine="scripted", extra_args=["--deepgram-timeout-s", "1"]) as srv:
        yield srv


def target(srv: ReferenceServer) -> StreamTarget:
    return StreamTarget(srv.url, srv.api_key)


async def session_when_done(srv: ReferenceServer, session_id: str, timeout: float = 15) -> dict[str, Any]:
    """GET /v1/sessions/{id} until the pipeline has finished (it goes on after the close 1000)."""
    async with httpx.AsyncClient(base_url=srv.url, headers=srv.auth_headers(), timeout=5) as http:
        async with asyncio.timeout(timeout):
            while True:
                body = (await http.get(f"/v1/sessions/{session_id}")).json()
                if body["state"] in ("completed", "failed"):
                    return body
                await asyncio.sleep(0.05)


def infos(out: SessionOutcome, name: str) -> list[Info]:
    return [e for _, e in out.history.events("info") if e.name == name]


def listen_url(srv: ReferenceServer, **query: Any) -> str:
    params = {"encoding": "linear16", "sample_rate": 16000, "channels": 1, **query}
    return f"{srv.ws_url}/v1/listen?{urlencode(params)}"


async def connect(srv: ReferenceServer, **query: Any) -> websockets.ClientConnection:
    return await websockets.connect(listen_url(srv, **query), open_timeout=10, close_timeout=2,
                                    additional_headers={"Authorization": f"Token {srv.api_key}"})


async def read_until_closed(ws: websockets.ClientConnection, timeout: float = 15) -> list[dict[str, Any]]:
    out = []
    try:
        async with asyncio.timeout(timeout):
            async for raw in ws:
                out.append(json.loads(raw))
    except websockets.ConnectionClosed:
        pass
    return out


async def send_paced(ws: websockets.ClientConnection, pcm: bytes, chunk: int = 3200) -> None:
    for i in range(0, len(pcm), chunk):
        await ws.send(pcm[i:i + chunk])


# --- the harness client end to end ------------------------------------------------------------
async def test_pocketsphinx_fixture_through_the_harness_client(server: ReferenceServer) -> None:
    pcm = FIXTURE.pcm()
    params = SessionParams(engine="pocketsphinx", interim_results=True, vad_events=True)
    plan = SessionPlan(pcm=pcm, params=params, pace=0, seed=1, meta={"expected_text": FIXTURE.text})
    out = await AsyncSessionClient(get_codec("deepgram"), target(server), plan).run()

    assert out.ok, out.error
    assert out.close_code == 1000 and out.session_id
    wer, counts = word_error_rate(FIXTURE.text, out.transcript)
    assert wer < 0.15, (out.transcript, counts)
    metadata = infos(out, "Metadata")
    assert len(metadata) == 1 and metadata[0].data["request_id"] == out.session_id
    assert metadata[0].data["duration"] == pytest.approx(len(pcm) / 32000)
    kinds = [type(e).__name__ if not isinstance(e, Info) else e.name for _, e in out.history.events()]
    assert kinds.index("SpeechStarted") < kinds.index("Final") < kinds.index("Metadata")
    assert kinds[-1] == "Closed"  # Metadata is the last message before the close
    # the words start where the fixture's speech starts (times on the session's audio clock)
    first_word = out.history.unique_finals()[0].words[0]
    assert abs(first_word.start_ms - FIXTURE.speech_onset_ms) < 400

    body = await session_when_done(server, out.session_id)
    assert body["state"] == "completed" and body["events"] == PIPELINE_ORDER
    assert body["transcript"] == out.transcript  # what the client got is what the server stored
    assert set(body["pipeline"].values()) == {"ready"}
    assert body["results"]["refined_transcript"] is not None and body["metadata"]["protocol"] == "deepgram"


async def test_scripted_words_are_exact_through_the_harness_client(server: ReferenceServer) -> None:
    pcm = silence(23 * WORD_BYTES + 1000)  # 23 whole words and a piece of one, never emitted
    params = SessionParams(engine="scripted", script=SCRIPT, vad_events=True, utterance_end_ms=1000)
    plan = SessionPlan(pcm=pcm, params=params, pace=0, seed=1)
    out = await AsyncSessionClient(DeepgramCodec(), target(server), plan).run()

    assert out.ok, out.error
    assert out.transcript.split() == expected_words(23)
    finals = out.history.unique_finals()
    assert [len(f.words) for f in finals] == [5, 5, 5, 5, 3]
    words = [w for f in finals for w in f.words]
    assert [(w.start_ms, w.end_ms) for w in words] == [(i * 300, (i + 1) * 300) for i in range(23)]
    assert all(w.confidence == 1.0 for w in words)
    endpoints = [e.data for e in infos(out, "endpoint")]
    assert [(e["speech_final"], e["from_finalize"]) for e in endpoints] == [(True, False)] * 4 + [(False, True)]
    assert len(infos(out, "SpeechStarted")) == len(finals)
    assert infos(out, "UtteranceEnd") == []  # back-to-back words: no pause ends an utterance
    assert infos(out, "Metadata")[0].data["duration"] == pytest.approx(len(pcm) / 32000)

    body = await session_when_done(server, out.session_id)
    assert body["state"] == "completed" and body["engine"] == "scripted"
    assert [f["text"] for f in body["finals"]] == [f.text for f in finals]
    assert body["durable_offset"] == 23 * WORD_BYTES and body["events"] == PIPELINE_ORDER


async def test_net_0001_after_silence_reaches_the_client_and_the_session_is_finalized(
        impatient_server: ReferenceServer) -> None:
    params = SessionParams(engine="scripted", script=SCRIPT)
    plan = SessionPlan(pcm=silence(3 * WORD_BYTES), params=params, pace=0, seed=1, finalize="none", linger_s=4,
                       keepalive_s=None, max_reconnects=0)
    out = await AsyncSessionClient(DeepgramCodec(), target(impatient_server), plan).run()

    assert not out.ok and out.close_code == 1011
    errors = [e for _, e in out.history.events("error")]
    assert [e.code for e in errors] == ["NET-0001"] and errors[0].retryable
    closed = [e for _, e in out.history.events("closed")]
    assert closed == [Closed(1011, errors[0].message)] and "1 s" in errors[0].message
    body = await session_when_done(impatient_server, out.session_id)  # a Deepgram session cannot resume
    assert body["state"] == "completed" and body["transcript"].split() == expected_words(3)


# --- what the driver does not exercise ----------------------------------------------------------
async def test_utterance_end_follows_the_last_final_after_a_pause(server: ReferenceServer) -> None:
    ws = await connect(server, interim_results="true", vad_events="true", utterance_end_ms=1000)
    await send_paced(ws, FIXTURE.pcm() + silence(48000))  # the fixture's own pause, then 1.5 s more
    seen: list[dict[str, Any]] = []
    async with asyncio.timeout(20):
        while not seen or seen[-1]["type"] != "UtteranceEnd":
            seen.append(json.loads(await ws.recv()))
    await ws.send(json.dumps({"type": "CloseStream"}))
    rest = await read_until_closed(ws)

    assert ws.close_code == 1000 and [m["type"] for m in rest] == ["Metadata"]  # the pause holds no words
    kinds = [m["type"] for m in seen]
    assert kinds[0] == "SpeechStarted" and kinds.count("UtteranceEnd") == 1
    finals = [m for m in seen if m["type"] == "Results" and m["is_final"]]
    assert finals and kinds.index("UtteranceEnd") > kinds.index("Results")
    last_word = finals[-1]["channel"]["alternatives"][0]["words"][-1]
    assert seen[-1]["last_word_end"] == last_word["end"]
    assert seen[-1]["last_word_end"] <= FIXTURE.speech_end_s + 0.3


async def test_keepalive_holds_a_silent_stream_open(impatient_server: ReferenceServer) -> None:
    ws = await connect(impatient_server, model="scripted", script=SCRIPT)
    for _ in range(12):  # 2.4 s in all: more than twice the 1 s timeout
        await ws.send(json.dumps({"type": "KeepAlive"}))
        await asyncio.sleep(0.2)
    await ws.send(silence(2 * WORD_BYTES))
    await ws.send(json.dumps({"type": "CloseStream"}))
    messages = await read_until_closed(ws)
    assert ws.close_code == 1000
    assert [m["type"] for m in messages] == ["Results", "Metadata"]
    assert messages[0]["channel"]["alternatives"][0]["transcript"].split() == expected_words(2)


async def test_finalized_over_http_meanwhile_the_stream_gets_metadata_and_1000(server: ReferenceServer) -> None:
    ws = await connect(server, model="scripted", script=SCRIPT, endpointing="false")
    await ws.send(silence(5 * WORD_BYTES))
    first = json.loads(await asyncio.wait_for(ws.recv(), 10))
    assert first["is_final"] and not first["speech_final"]  # endpointing=false: no endpoints claimed
    request_id = first["metadata"]["request_id"]
    async with httpx.AsyncClient(base_url=server.url, headers=server.auth_headers(), timeout=5) as http:
        assert (await http.post(f"/v1/sessions/{request_id}/finalize")).status_code == 202
    messages = await read_until_closed(ws)
    assert ws.close_code == 1000 and messages[-1]["type"] == "Metadata"
    assert messages[-1]["request_id"] == request_id and messages[-1]["duration"] == pytest.approx(1.5)
    body = await session_when_done(server, request_id)
    assert body["transcript"].split() == expected_words(5)


async def test_the_key_may_come_as_the_browser_subprotocol(server: ReferenceServer) -> None:
    async with websockets.connect(listen_url(server, model="scripted", script=SCRIPT),
                                  subprotocols=["token", server.api_key], open_timeout=10, close_timeout=2) as ws:
        assert ws.subprotocol == "token"
        await ws.send(b"")  # an empty frame: Deepgram's older CloseStream
        messages = await read_until_closed(ws)
    assert ws.close_code == 1000 and [m["type"] for m in messages] == ["Metadata"]
    assert messages[0]["duration"] == 0


@pytest.mark.parametrize("query, name", [
    ({"encoding": "opus"}, "encoding"),
    ({"sample_rate": 11025}, "sample_rate"),
    ({"channels": 2}, "channels"),
    ({"sample_rate": "fast"}, "sample_rate"),
    ({"utterance_end_ms": "-5"}, "utterance_end_ms"),
    ({"interim_results": "maybe"}, "interim_results"),
    ({"endpointing": "soon"}, "endpointing"),
    ({"model": "scripted"}, "script"),
])
async def test_a_bad_parameter_is_refused_at_the_handshake_by_name(server: ReferenceServer, query, name) -> None:
    with pytest.raises(websockets.InvalidStatus) as err:
        await connect(server, **query)
    response = err.value.response
    assert response.status_code == 400
    assert name in json.loads(response.body)["err_msg"] and name in response.headers["dg-error"]


async def test_a_wrong_key_is_refused_with_401_before_any_session(server: ReferenceServer) -> None:
    async with httpx.AsyncClient(base_url=server.url, headers=server.auth_headers(), timeout=5) as http:
        before = (await http.get("/v1/stats")).json()["sessions_created_total"]
        wrong = ({"additional_headers": {"Authorization": "Token wrong"}}, {"subprotocols": ["token", "wrong"]}, {})
        for extra in wrong:
            with pytest.raises(websockets.InvalidStatus) as err:
                await websockets.connect(listen_url(server), open_timeout=10, **extra)
            assert err.value.response.status_code == 401
        assert (await http.get("/v1/stats")).json()["sessions_created_total"] == before


# --- pure parts -------------------------------------------------------------------------------
def test_utterance_end_needs_a_final_then_a_gap_without_words() -> None:
    ue = UtteranceEnds(1000)
    assert ue.on_audio(5000) is None  # nothing finalized yet
    assert ue.on_result(500, 1200, None) is None  # interim words
    assert ue.on_result(500, 1500, 1400) is None  # their final: last word ends at 1400
    assert ue.on_audio(2300) is None  # 900 ms of silence so far
    assert ue.on_result(2300, 2600, None) is None  # words again within the gap: same utterance
    assert ue.on_audio(3500) is None  # the new words are not final: their gap does not count
    assert ue.on_result(2300, 2900, 2800) is None
    assert ue.on_audio(3900) == 2800 and ue.on_audio(9000) is None  # once per utterance
    assert ue.on_result(9000, 9300, 9200) is None
    assert ue.on_result(10500, 10800, None) == 9200  # a gap seen first in the next words' timing


def test_listen_options_defaults_and_extensions() -> None:
    default = ListenOptions.parse(QueryParams(""))
    assert (default.interim_results, default.vad_events, default.endpointing, default.utterance_end_ms) == (
        False, False, True, None)
    opts = ListenOptions.parse(QueryParams("interim_results=true&endpointing=300&utterance_end_ms=1000"
                                           "&model=nova-3&language=en&punctuate=true"))
    assert opts.interim_results and opts.endpointing and opts.utterance_end_ms == 1000
    assert opts.session_body("pocketsphinx")["engine"] == "pocketsphinx"  # a Deepgram model: the default engine
    scripted = ListenOptions.parse(QueryParams("model=scripted&script=a+b&endpointing=false"))
    assert scripted.session_body("pocketsphinx")["engine"] == "scripted" and not scripted.endpointing
    with pytest.raises(SessionError) as err:
        ListenOptions.parse(QueryParams("encoding=opus"))
    assert err.value.field == "encoding" and "linear16" in err.value.message

"""The vendor endpoints over raw WebSockets with the scripted engine: exact words through each
protocol, each vendor's documented errors, the connection record as ``harness.vendorleg`` reads
it, the per-protocol counters, and hypothesis-generated frames (no crash, the documented error,
no other session touched)."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import websockets
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.services import ReferenceServer
from harness.vendorleg import VendorLeg
from srv_client import SCRIPT, WORD_BYTES, expected_words, silence
from vendor_audio import connections, session_when_done


@pytest.fixture(scope="module")
def server() -> Iterator[ReferenceServer]:
    with ReferenceServer(engine="scripted") as srv:
        yield srv


def url(srv: ReferenceServer, path: str, **query: Any) -> str:
    return f"{srv.ws_url}{path}?{urlencode({'model': 'scripted', 'script': SCRIPT, **query})}"


async def read_all(ws: websockets.ClientConnection, timeout: float = 15) -> list[dict[str, Any]]:
    out = []
    try:
        async with asyncio.timeout(timeout):
            async for raw in ws:
                out.append(json.loads(raw))
    except websockets.ConnectionClosed:
        pass
    return out


async def recv_until(ws: websockets.ClientConnection, kind: str, key: str = "type",
                     timeout: float = 10) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    try:
        async with asyncio.timeout(timeout):
            while not out or out[-1].get(key) != kind:
                out.append(json.loads(await ws.recv()))
    except TimeoutError:
        raise AssertionError(f"no {kind} within {timeout} s; got {[m.get(key) for m in out]}") from None
    return out


def key(srv: ReferenceServer, scheme: str = "Bearer") -> dict[str, str]:
    return {"Authorization": f"{scheme} {srv.api_key}".strip()}


# --- OpenAI Realtime ---------------------------------------------------------------------------
async def openai(srv: ReferenceServer, **query: Any) -> websockets.ClientConnection:
    ws = await websockets.connect(url(srv, "/v1/realtime", intent="transcription", **query),
                                  additional_headers=key(srv), open_timeout=10, close_timeout=2)
    assert json.loads(await ws.recv())["type"] == "session.created"
    return ws


async def test_openai_manual_commits_give_each_item_its_words_and_clear_drops_audio(server) -> None:
    ws = await openai(server)
    await ws.send(json.dumps({"type": "session.update", "session": {"type": "transcription", "audio": {"input": {
        "turn_detection": None, "format": {"type": "audio/pcm", "rate": 24000}}}}}))
    assert (await recv_until(ws, "session.updated"))[-1]["session"]["audio"]["input"]["turn_detection"] is None
    per_word_24k = WORD_BYTES * 3 // 2
    await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": base64.b64encode(
        silence(4 * per_word_24k)).decode()}))
    await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
    first = await recv_until(ws, "conversation.item.input_audio_transcription.completed")
    await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": base64.b64encode(
        silence(3 * per_word_24k)).decode()}))
    await ws.send(json.dumps({"type": "input_audio_buffer.clear"}))
    await recv_until(ws, "input_audio_buffer.cleared")
    await ws.send(json.dumps({"type": "input_audio_buffer.commit", "event_id": "client-7"}))
    error = (await recv_until(ws, "error"))[-1]["error"]
    assert error["code"] == "input_audio_buffer_commit_empty" and error["event_id"] == "client-7"
    await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": base64.b64encode(
        silence(2 * per_word_24k)).decode()}))
    await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
    second = await recv_until(ws, "conversation.item.input_audio_transcription.completed")
    await ws.close()
    assert [m["type"] for m in first] == ["input_audio_buffer.committed",
                                          "conversation.item.input_audio_transcription.delta",
                                          "conversation.item.input_audio_transcription.completed"]
    assert first[-1]["transcript"].split() == expected_words(4)
    assert second[-1]["transcript"].split() == expected_words(2, first=4)  # the cleared words never heard
    assert second[0]["previous_item_id"] == first[0]["item_id"]


async def test_openai_server_vad_turns_and_the_documented_errors(server) -> None:
    ws = await openai(server, tag="oai-vad")
    await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
    assert (await recv_until(ws, "error"))[-1]["error"]["code"] == "input_audio_buffer_commit_empty"
    for bad, code in [("not json", "invalid_json"), (json.dumps({"type": "response.create"}), "invalid_value"),
                      (json.dumps({"type": "input_audio_buffer.append", "audio": "%%%"}), "invalid_value")]:
        await ws.send(bad)
        assert (await recv_until(ws, "error"))[-1]["error"]["code"] == code
    await ws.send(b"\x00\x01")
    assert (await recv_until(ws, "error"))[-1]["error"]["type"] == "invalid_request_error"
    # scripted segments of 5 words are turns: speech_started ... completed, unprompted
    await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": base64.b64encode(
        silence(6 * WORD_BYTES * 3 // 2)).decode()}))
    turn = await recv_until(ws, "conversation.item.input_audio_transcription.completed")
    kinds = [m["type"] for m in turn]
    assert kinds[0] == "input_audio_buffer.speech_started" and "input_audio_buffer.speech_stopped" in kinds
    assert turn[-1]["transcript"].split() == expected_words(5)
    await ws.close()


async def test_openai_handshake_refusals() -> None:
    with ReferenceServer(engine="scripted") as srv:
        for headers, query, status in [({"Authorization": "Bearer wrong"}, {"intent": "transcription"}, 401),
                                       (key(srv), {}, 400)]:
            with pytest.raises(websockets.InvalidStatus) as err:
                await websockets.connect(f"{srv.ws_url}/v1/realtime?{urlencode(query)}", additional_headers=headers)
            assert err.value.response.status_code == status
            assert json.loads(err.value.response.body)["error"]["type"] == "invalid_request_error"
        refused = await connections(srv)
        assert [(r["protocol"], r["handshake_status"]) for r in refused] == [("openai-realtime", 401),
                                                                            ("openai-realtime", 400)]


# --- AssemblyAI --------------------------------------------------------------------------------
async def assemblyai(srv: ReferenceServer, auth: dict[str, str] | None = None, **query: Any):
    return await websockets.connect(url(srv, "/v3/ws", **{"sample_rate": 16000, **query}),
                                    additional_headers={"Authorization": srv.api_key} if auth is None else auth,
                                    open_timeout=10, close_timeout=2)


async def test_assemblyai_turns_word_for_word_force_endpoint_and_terminate(server) -> None:
    ws = await assemblyai(server, format_turns="true", speech_model="scripted")
    begin = json.loads(await ws.recv())
    assert begin["type"] == "Begin"
    await ws.send(silence(3 * WORD_BYTES))  # 900 ms: within 50-1000 ms
    await ws.send(json.dumps({"type": "KeepAlive"}))
    await ws.send(json.dumps({"type": "ForceEndpoint"}))
    await ws.send(silence(2 * WORD_BYTES))
    await ws.send(json.dumps({"type": "Terminate"}))
    messages = await read_all(ws)
    assert ws.close_code == 1000 and messages[-1]["type"] == "Termination"
    ends = [m for m in messages if m["type"] == "Turn" and m["end_of_turn"] and not m["turn_is_formatted"]]
    assert [m["transcript"].split() for m in ends] == [expected_words(3), expected_words(2, first=3)]
    assert [m["turn_order"] for m in ends] == [0, 1]
    formatted = [m for m in messages if m["type"] == "Turn" and m["turn_is_formatted"]]
    assert formatted[0]["transcript"] == "Alpha bravo charlie."
    body = await session_when_done(server, begin["id"])
    assert body["transcript"].split() == expected_words(5)


@pytest.mark.parametrize("query, frame, code", [
    ({"sample_rate": "fast"}, None, 3006),
    ({"encoding": "opus"}, None, 3006),
    ({}, silence(320), 3007),  # 10 ms
    ({}, silence(2 * 32000), 3007),  # 2 s
    ({}, "not json", 3006),
    ({}, json.dumps({"type": "Pause"}), 3006),
])
async def test_assemblyai_errors_are_its_close_codes(server, query, frame, code) -> None:
    ws = await assemblyai(server, **query)
    if frame is not None:
        assert json.loads(await ws.recv())["type"] == "Begin"
        await ws.send(frame)
    await read_all(ws)
    assert ws.close_code == code, (ws.close_code, ws.close_reason)


async def test_assemblyai_wrong_key_and_idle_timeout(server) -> None:
    ws = await assemblyai(server, auth={"Authorization": "wrong"})
    await read_all(ws)
    assert ws.close_code == 4001
    ws = await assemblyai(server, inactivity_timeout=5)
    await read_all(ws, timeout=20)
    assert ws.close_code == 4031


# --- Speechmatics ------------------------------------------------------------------------------
def start_recognition(encoding: str = "pcm_s16le", rate: int = 16000, **config: Any) -> str:
    return json.dumps({"message": "StartRecognition", "audio_format": {"type": "raw", "encoding": encoding,
                                                                       "sample_rate": rate},
                       "transcription_config": {"language": "en", **config}})


async def speechmatics(srv: ReferenceServer, auth: dict[str, str] | None = None, **query: Any):
    return await websockets.connect(url(srv, "/v2", **query), additional_headers=auth or key(srv),
                                    open_timeout=10, close_timeout=2)


async def test_speechmatics_audio_added_transcripts_end_of_utterance_and_end_of_stream(server) -> None:
    ws = await speechmatics(server)
    await ws.send(start_recognition(conversation_config={"end_of_utterance_silence_trigger": 0.5}))
    started = json.loads(await ws.recv())
    assert started["message"] == "RecognitionStarted"
    for _ in range(6):
        await ws.send(silence(WORD_BYTES))
    await ws.send(json.dumps({"message": "ForceEndOfUtterance"}))
    await ws.send(json.dumps({"message": "EndOfStream", "last_seq_no": 6}))
    messages = await read_all(ws)
    assert ws.close_code == 1000 and messages[-1]["message"] == "EndOfTranscript"
    assert [m["seq_no"] for m in messages if m["message"] == "AudioAdded"] == [1, 2, 3, 4, 5, 6]
    finals = [m for m in messages if m["message"] == "AddTranscript"]
    assert all(m["format"] == "2.1" for m in finals)
    words = [r["alternatives"][0]["content"] for m in finals for r in m["results"]]
    assert words == expected_words(6)
    assert any(m["message"] == "EndOfUtterance" for m in messages)
    body = await session_when_done(server, started["id"])
    assert body["transcript"].split() == expected_words(6)


@pytest.mark.parametrize("first, second, error", [
    (None, b"\x00" * 100, "protocol_error"),
    ("not json", None, "invalid_message"),
    (json.dumps({"message": "StartRecognition", "audio_format": {"type": "file"}}), None, "invalid_audio_type"),
    (start_recognition(rate=11025), None, "invalid_audio_type"),
    (start_recognition(), start_recognition(), "protocol_error"),
    (start_recognition(), json.dumps({"message": "Nope"}), "invalid_message"),
])
async def test_speechmatics_errors_then_close(server, first, second, error) -> None:
    ws = await speechmatics(server)
    for frame in (first, second):
        if frame is not None:
            await ws.send(frame)
    messages = await read_all(ws)
    errors = [m for m in messages if m["message"] == "Error"]
    assert [e["type"] for e in errors] == [error] and errors[0]["reason"]
    assert ws.close_code == 1008


async def test_speechmatics_wrong_key(server) -> None:
    ws = await speechmatics(server, auth={"Authorization": "Bearer wrong"})
    messages = await read_all(ws)
    assert messages == [{"message": "Error", "type": "not_authorised", "reason": messages[0]["reason"]}]


# --- records and counters ----------------------------------------------------------------------
async def test_connection_records_parse_as_the_harness_vendor_leg_and_metrics_count_protocols(server) -> None:
    ws = await assemblyai(server, tag="leg-1")
    json.loads(await ws.recv())
    for _ in range(3):
        await ws.send(silence(3200))
    await ws.send(json.dumps({"type": "KeepAlive"}))
    await ws.send(json.dumps({"type": "Terminate"}))
    await read_all(ws)
    async with httpx.AsyncClient(base_url=server.url, headers=server.auth_headers(), timeout=5) as http:
        body = (await http.get("/debug/connections", params={"tag": "leg-1"})).json()
        assert (await http.get("/debug/connections")).status_code == 200
        assert (await http.get("/debug/connections", headers={"Authorization": "Bearer no"})).status_code == 401
        metrics = (await http.get("/metrics")).text
    leg = VendorLeg.from_dict(body)
    [conn] = leg.with_tag("leg-1")
    assert conn.protocol == "assemblyai" and conn.path == "/v3/ws" and conn.close_code == 1000
    assert conn.audio.total_frames == 3 and conn.audio.total_bytes == 9600
    assert [name for _, name in conn.controls] == ["KeepAlive", "Terminate"]
    assert conn.opened_ns < conn.audio.frames[0][0] <= conn.closed_ns
    assert 'reference_protocol_connections_total{protocol="assemblyai"}' in metrics
    assert 'reference_protocol_audio_bytes_total{protocol="assemblyai"}' in metrics


# --- generated frames --------------------------------------------------------------------------
FRAMES = st.lists(st.one_of(st.binary(max_size=4000), st.text(max_size=200),
                            st.builds(json.dumps, st.dictionaries(st.sampled_from(
                                ["type", "message", "audio", "session", "last_seq_no", "format_turns"]),
                                st.one_of(st.none(), st.integers(), st.text(max_size=20),
                                          st.sampled_from(["input_audio_buffer.commit", "input_audio_buffer.append",
                                                           "session.update", "ForceEndpoint", "Terminate",
                                                           "StartRecognition", "EndOfStream", "KeepAlive"])),
                                max_size=4))), min_size=1, max_size=6)
ENDPOINTS = {
    "deepgram": ("/v1/listen", {}, lambda srv: {"Authorization": f"Token {srv.api_key}"}),
    "openai": ("/v1/realtime", {"intent": "transcription"}, key),
    "assemblyai": ("/v3/ws", {"sample_rate": 16000}, lambda srv: {"Authorization": srv.api_key}),
    "speechmatics": ("/v2", {}, key),
}


@pytest.mark.parametrize("protocol", list(ENDPOINTS))
def test_generated_frames_never_crash_an_endpoint_nor_touch_another_session(server, protocol) -> None:
    path, query, auth = ENDPOINTS[protocol]

    async def bystander_then(frames: list[Any]) -> None:
        # a healthy bystander: an AssemblyAI session open throughout, checked word for word after
        other = await assemblyai(server)
        other_id = json.loads(await other.recv())["id"]
        ws = await websockets.connect(url(server, path, **query), additional_headers=auth(server),
                                      open_timeout=10, close_timeout=2)
        try:
            for frame in frames:
                await ws.send(frame)
            await asyncio.wait_for(ws.ping(), 5)  # the server is still answering on this connection
        except websockets.ConnectionClosed as exc:
            assert exc.rcvd is not None and exc.rcvd.code != 1011, f"crashed: {exc.rcvd}"
        finally:
            await ws.close()
        await other.send(silence(3 * WORD_BYTES))
        await other.send(json.dumps({"type": "Terminate"}))
        messages = await read_all(other)
        assert other.close_code == 1000, "the bystander session was disturbed"
        ends = [m["transcript"] for m in messages if m.get("type") == "Turn" and m["end_of_turn"]]
        assert " ".join(ends).split() == expected_words(3)
        assert (await session_when_done(server, other_id))["transcript"].split() == expected_words(3)

    @settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(FRAMES)
    def run(frames: list[Any]) -> None:
        asyncio.run(bystander_then(frames))

    run()

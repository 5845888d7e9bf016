"""The Deepgram-compatible stream (/v1/listen) against PROTOCOL.md's subset of Deepgram's live API."""

from __future__ import annotations

import asyncio
import json
from urllib.parse import urlencode

import pytest
import websockets

from srv_client import PIPELINE_ORDER, SCRIPT, WORD_BYTES, Api, expected_words, silence


def listen_url(srv, **query) -> str:
    params = {"encoding": "linear16", "sample_rate": 16000, "channels": 1, "model": "scripted", "script": SCRIPT,
              **query}
    return f"{srv.ws_url}/v1/listen?{urlencode(params)}"


async def connect(srv, key: str | None = None, **query):
    return await websockets.connect(listen_url(srv, **query),
                                    additional_headers={"Authorization": f"Token {key or srv.api_key}"},
                                    open_timeout=10, close_timeout=2)


async def read_all(ws, timeout: float = 15) -> list[dict]:
    out = []
    try:
        async with asyncio.timeout(timeout):
            async for raw in ws:
                out.append(json.loads(raw))
    except websockets.ConnectionClosed:
        pass
    return out


async def test_auth_and_bad_parameters_are_refused_at_the_handshake(ref_server) -> None:
    with pytest.raises(websockets.InvalidStatus) as err:
        await connect(ref_server, key="wrong")
    assert err.value.response.status_code == 401
    with pytest.raises(websockets.InvalidStatus) as err:
        await connect(ref_server, sample_rate=11025)
    assert err.value.response.status_code == 400 and b"sample_rate" in err.value.response.body


async def test_results_finalize_closestream_and_the_session(ref_server, api: Api) -> None:
    ws = await connect(ref_server, interim_results="true", vad_events="true", utterance_end_ms=1000)
    pcm = silence(7 * WORD_BYTES + 1000)
    odd_chunks = [pcm[i:i + 3201] for i in range(0, len(pcm), 3201)]  # samples split across frames
    for chunk in odd_chunks:
        await ws.send(chunk)
    await ws.send(json.dumps({"type": "KeepAlive"}))
    await ws.send(json.dumps({"type": "Finalize"}))
    await ws.send(silence(3 * WORD_BYTES))
    await ws.send(json.dumps({"type": "CloseStream"}))
    messages = await read_all(ws)
    assert ws.close_code == 1000
    kinds = [m["type"] for m in messages]
    assert kinds[0] == "SpeechStarted" and kinds[-1] == "Metadata"
    assert "UtteranceEnd" not in kinds  # scripted words leave no gap after any final
    results = [m for m in messages if m["type"] == "Results"]
    finals = [m for m in results if m["is_final"]]
    assert any(not m["is_final"] for m in results)  # interim results were asked for
    words = [w["word"] for m in finals for w in m["channel"]["alternatives"][0]["words"]]
    assert words == expected_words(10)  # 7 words, the Finalize flush, then 3 more
    assert [m["from_finalize"] for m in finals] == [False, True, True]  # Finalize's flush, then CloseStream's
    assert finals[1]["start"] == 1.5 and finals[1]["duration"] == pytest.approx(0.6)
    request_id = finals[0]["metadata"]["request_id"]
    meta = messages[-1]
    assert meta["request_id"] == request_id and meta["duration"] == pytest.approx(len(pcm) / 32000 + 0.9)
    body = await api.wait_state(request_id)
    assert body["state"] == "completed" and body["events"] == PIPELINE_ORDER
    assert body["transcript"].split() == expected_words(10)


async def test_silence_times_out_with_net_0001(start_ref_server) -> None:
    srv = start_ref_server(extra_args=("--deepgram-timeout-s", "1"))
    ws = await connect(srv)
    await read_all(ws, timeout=10)
    assert ws.close_code == 1011 and ws.close_reason.startswith("NET-0001")


async def test_a_dropped_connection_is_finalized(ref_server, api: Api) -> None:
    ws = await connect(ref_server, interim_results="false")
    await ws.send(silence(5 * WORD_BYTES))
    first = json.loads(await asyncio.wait_for(ws.recv(), 10))
    assert first["type"] == "Results" and first["is_final"]  # no interim results unless asked
    await ws.close()
    body = await api.wait_state(first["metadata"]["request_id"])
    assert body["state"] == "completed" and body["transcript"].split() == expected_words(5)

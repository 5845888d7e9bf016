"""The v1 stream against PROTOCOL.md: ready, audio rules, acks, errors, close codes, replay."""

from __future__ import annotations

import json

import pytest
import websockets

from srv_client import PIPELINE_ORDER, SCRIPT, WORD_BYTES, Api, expected_words, frame, silence


async def test_ready_transcript_acks_events_and_close_1000(api: Api) -> None:
    s = await api.create()
    st = await api.stream(s["session_id"], s["token"])
    ready = await st.recv()
    assert ready == {"type": "ready", "session_id": s["session_id"], "committed_offset": 0, "sample_rate": 16000,
                     "heartbeat_s": 5, "idle_timeout_s": 15, "max_frame_bytes": 32768}
    end = await st.send_audio(silence(12 * WORD_BYTES + 4000))
    await st.send_json({"type": "finalize"})
    closed = await st.drain_until_closed()
    assert closed.code == 1000
    # 12 whole words; the trailing partial word at finalize is not emitted
    assert st.final_words() == expected_words(12)
    finals = st.of_type("final")
    assert [f["segment_id"] for f in finals] == [0, 1, 2]
    assert finals[1]["start_ms"] >= finals[0]["end_ms"]
    assert finals[0]["words"][0] == {"word": "alpha", "start_ms": 0, "end_ms": 300, "confidence": 1.0}
    assert st.of_type("partial"), "partials while audio flows"
    acks = st.of_type("ack")
    assert acks and max(a["received_offset"] for a in acks) == end
    assert all(a["durable_offset"] <= a["received_offset"] for a in acks)
    assert st.event_names() == PIPELINE_ORDER
    body = await api.get(s["session_id"])
    assert body["state"] == "completed"
    assert body["events"] == PIPELINE_ORDER
    assert body["received_offset"] == end
    assert body["durable_offset"] == 12 * WORD_BYTES
    assert [f["text"] for f in body["finals"]] == [f["text"] for f in finals]
    assert set(body["pipeline"].values()) == {"ready"}
    assert body["results"]["refined_transcript"]["text"]


async def test_duplicate_tail_and_gap_rules(api: Api) -> None:
    s = await api.create()
    st = await api.stream(s["session_id"])
    await st.recv()
    pcm = silence(6 * WORD_BYTES)
    await st.ws.send(frame(0, pcm[:9600]))
    await st.ws.send(frame(0, pcm[:9600]))  # duplicate: ignored, acked
    await st.ws.send(frame(4800, pcm[4800:19200]))  # overlaps: only the new tail is taken
    await st.ws.send(frame(30000, pcm[30000:33600]))  # gap: nothing taken
    gap = await st.recv_until(lambda m: m["type"] == "error")
    assert gap["code"] == "audio_gap" and gap["expected_offset"] == 19200 and gap["retryable"] is True
    ack = await st.recv_until(lambda m: m["type"] == "ack" and m["received_offset"] == 19200, timeout=3)
    assert ack["received_offset"] == 19200
    await st.send_audio(pcm[19200:], start=19200)
    await st.send_json({"type": "finalize"})
    assert (await st.drain_until_closed()).code == 1000
    assert st.final_words() == expected_words(6)


@pytest.mark.parametrize("payload, code", [
    (b"\x01\x02\x03", "bad_frame"),  # shorter than the header
    (frame(0, b"\x00\x00\x00"), "bad_frame"),  # odd payload
])
async def test_bad_frames_get_an_error_and_the_stream_goes_on(api: Api, payload: bytes, code: str) -> None:
    s = await api.create()
    st = await api.stream(s["session_id"])
    await st.recv()
    await st.ws.send(payload)
    err = await st.recv()
    assert err["type"] == "error" and err["code"] == code and err["message"]
    await st.ws.send(frame(0, silence(WORD_BYTES)))
    ack = await st.recv_until(lambda m: m["type"] == "ack")
    assert ack["received_offset"] == WORD_BYTES
    await st.close()


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", '"finalize"', '{"type": "dance"}', '{"kind": "finalize"}'])
async def test_bad_messages_get_bad_message(api: Api, text: str) -> None:
    s = await api.create()
    st = await api.stream(s["session_id"])
    await st.recv()
    await st.ws.send(text)
    err = await st.recv()
    assert err["type"] == "error" and err["code"] == "bad_message" and err["retryable"] is False
    await st.send_json({"type": "keepalive"})  # still open and answering
    await st.ws.send(frame(0, silence(100)))
    assert (await st.recv_until(lambda m: m["type"] == "ack"))["received_offset"] == 100
    await st.close()


async def test_frame_too_large_closes_1009(api: Api) -> None:
    s = await api.create()
    st = await api.stream(s["session_id"])
    await st.recv()
    await st.ws.send(frame(0, silence(32768 + 2)))
    err = await st.recv()
    assert err["code"] == "frame_too_large"
    assert (await st.drain_until_closed()).code == 1009


async def test_frame_at_the_limit_is_taken(api: Api) -> None:
    s = await api.create()
    st = await api.stream(s["session_id"])
    await st.recv()
    await st.ws.send(frame(0, silence(32768)))
    assert (await st.recv_until(lambda m: m["type"] == "ack"))["received_offset"] == 32768
    await st.close()


async def test_audio_after_finalize_is_session_closed(api: Api, ref_server) -> None:
    s = await api.create(metadata={"hold_step": "analytics"})  # keeps the stream open after finalize
    st = await api.stream(s["session_id"])
    await st.recv()
    await st.send_audio(silence(2 * WORD_BYTES))
    await st.send_json({"type": "finalize"})
    await st.recv_until(lambda m: m.get("name") == "analytics_started")
    await st.ws.send(frame(2 * WORD_BYTES, silence(3200)))
    err = await st.recv_until(lambda m: m["type"] == "error")
    assert err["code"] == "session_closed" and err["retryable"] is False
    r = await api.http.post(f"/debug/release/{s['session_id']}")
    assert r.status_code == 200
    assert (await st.drain_until_closed()).code == 1000
    assert st.event_names() == PIPELINE_ORDER


async def test_unknown_session_4404_and_finalized_session_4410(api: Api) -> None:
    st = await api.stream("no-such-session")
    assert (await st.drain_until_closed()).code == 4404
    assert st.messages == []
    s = await api.create()
    r = await api.finalize(s["session_id"])
    assert r.status_code == 202
    await api.wait_state(s["session_id"])
    st = await api.stream(s["session_id"], s["token"])
    assert (await st.drain_until_closed()).code == 4410
    assert st.messages == []


@pytest.mark.parametrize("credential", [None, "wrong-key", "other-token"])
async def test_bad_credentials_close_1008_before_any_message(api: Api, credential: str | None) -> None:
    s = await api.create()
    other = await api.create()
    url = api.ws_url(s["session_id"])
    headers = {}
    if credential == "other-token":
        headers["Authorization"] = f"Bearer {other['token']}"
    elif credential:
        headers["Authorization"] = f"Bearer {credential}"
    async with websockets.connect(url, additional_headers=headers) as ws:
        with pytest.raises(websockets.ConnectionClosed):
            msg = await ws.recv()
            pytest.fail(f"got a message before the close: {msg}")
        assert ws.close_code == 1008


async def test_token_via_access_token_query(api: Api) -> None:
    s = await api.create()
    st = await api.stream(s["session_id"], s["token"], via_query=True)
    assert (await st.recv())["type"] == "ready"
    await st.close()


async def test_new_connection_supersedes_old_with_4409(api: Api) -> None:
    s = await api.create()
    first = await api.stream(s["session_id"])
    await first.recv()
    await first.send_audio(silence(WORD_BYTES))
    await first.recv_until(lambda m: m["type"] == "ack" and m["received_offset"] == WORD_BYTES)
    second = await api.stream(s["session_id"])
    ready = await second.recv()
    # the live server still holds the audio it took: resume from R
    assert ready["committed_offset"] == WORD_BYTES
    assert (await first.drain_until_closed()).code == 4409
    assert (await api.get(s["session_id"]))["state"] == "streaming"
    await second.close()


async def test_replay_of_finals_after_last_segment_id(api: Api) -> None:
    s = await api.create()
    st = await api.stream(s["session_id"])
    await st.recv()
    end = await st.send_audio(silence(15 * WORD_BYTES))
    await st.recv_until(lambda m: m["type"] == "final" and m["segment_id"] == 2)
    await st.close()
    again = await api.stream(s["session_id"], last_segment_id=0)
    ready = await again.recv()
    assert ready["committed_offset"] == end
    replayed = [await again.recv(), await again.recv()]
    assert [m["segment_id"] for m in replayed] == [1, 2]
    assert [m["text"] for m in replayed] == [f["text"] for f in st.of_type("final")[1:3]]
    await again.close()


async def test_disconnect_makes_the_session_interrupted_and_reconnect_streaming(api: Api) -> None:
    s = await api.create()
    st = await api.stream(s["session_id"])
    await st.recv()
    assert (await api.get(s["session_id"]))["state"] == "streaming"
    await st.close()
    await api.wait_state(s["session_id"], ("interrupted",), timeout=5)
    again = await api.stream(s["session_id"])
    await again.recv()
    assert (await api.get(s["session_id"]))["state"] == "streaming"
    await again.close()


async def test_finalize_of_a_stream_with_no_audio_completes(api: Api) -> None:
    s = await api.create()
    st = await api.stream(s["session_id"])
    await st.recv()
    await st.send_json({"type": "finalize"})
    assert (await st.drain_until_closed()).code == 1000
    assert st.event_names() == PIPELINE_ORDER
    body = await api.get(s["session_id"])
    assert body["state"] == "completed" and body["finals"] == []


async def test_invalid_last_segment_id_is_reported_and_everything_replayed(api: Api) -> None:
    s = await api.create()
    st = await api.stream(s["session_id"], last_segment_id="abc")
    assert (await st.recv())["type"] == "ready"
    err = await st.recv()
    assert err["code"] == "bad_message" and "last_segment_id" in err["message"]
    await st.close()


def test_script_constant_is_long_enough() -> None:
    # the tests above rely on 12 distinct words so a doubled or lost word changes the text
    assert len(set(SCRIPT.split())) == 12
    assert json.dumps(expected_words(13))

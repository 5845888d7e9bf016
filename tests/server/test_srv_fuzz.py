"""Generated input (hypothesis) never brings the server down: every frame and message gets its
documented answer, the audio taken is exactly what the offset rules say, and a clean session
works afterwards."""

from __future__ import annotations

import asyncio
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from srv_client import WORD_BYTES, Api, expected_words, frame, silence

MAX_FRAME = 32768


def _texts() -> st.SearchStrategy[str]:
    json_values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
        max_leaves=6,
    )
    return st.one_of(
        st.text(max_size=60),  # mostly not JSON
        json_values.map(json.dumps),  # JSON, mostly not an object
        st.dictionaries(st.just("type"), st.text(max_size=12).filter(lambda t: t not in ("finalize", "keepalive")))
        .map(json.dumps),  # objects of unknown types
        st.just('{"type": "keepalive"}'),
    )


def _expected_text_error(text: str) -> str | None:
    try:
        obj = json.loads(text)
    except ValueError:
        return "bad_message"
    if isinstance(obj, dict) and obj.get("type") == "keepalive":
        return None
    return "bad_message"


async def _next_error(stream) -> dict:
    return await stream.recv_until(lambda m: m["type"] == "error", timeout=5)


async def _exercise(api: Api, data: st.DataObject) -> None:
    s = await api.create()
    stream = await api.stream(s["session_id"])
    assert (await stream.recv())["type"] == "ready"
    received = 0  # the model of the server's received_offset
    closed_1009 = False
    for _ in range(data.draw(st.integers(1, 12), label="messages")):
        kind = data.draw(st.sampled_from(["audio", "audio", "audio", "short", "odd", "text", "huge"]), label="kind")
        if kind == "audio":
            length = data.draw(st.integers(0, 6000), label="length") * 2
            offset = data.draw(st.one_of(st.just(received), st.integers(0, received + 20000)), label="offset")
            await stream.ws.send(frame(offset, silence(length)))
            if offset % 2:
                assert (await _next_error(stream))["code"] == "bad_frame"
            elif offset > received:
                err = await _next_error(stream)
                assert err["code"] == "audio_gap" and err["expected_offset"] == received, err
            else:
                received = max(received, offset + length)
        elif kind == "short":
            await stream.ws.send(data.draw(st.binary(max_size=7), label="short frame"))
            assert (await _next_error(stream))["code"] == "bad_frame"
        elif kind == "odd":
            n = data.draw(st.integers(0, 100), label="odd") * 2 + 1
            await stream.ws.send(frame(received, silence(n)))
            assert (await _next_error(stream))["code"] == "bad_frame"
        elif kind == "text":
            text = data.draw(_texts(), label="text")
            await stream.ws.send(text)
            expected = _expected_text_error(text)
            if expected:
                err = await _next_error(stream)
                assert err["code"] == expected, (text, err)
        else:
            await stream.ws.send(frame(received, silence(MAX_FRAME + 2)))
            assert (await _next_error(stream))["code"] == "frame_too_large"
            assert (await stream.drain_until_closed()).code == 1009
            closed_1009 = True
            break
    if closed_1009:
        return
    # nothing unexpected is pending: the next error is the one this sentinel causes
    await stream.ws.send("{")
    assert (await _next_error(stream))["code"] == "bad_message"
    if received:
        await stream.acked(received)
    await stream.send_json({"type": "finalize"})
    assert (await stream.drain_until_closed()).code == 1000
    assert stream.final_words() == expected_words(received // WORD_BYTES)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_generated_frames_and_messages(ref_server, data: st.DataObject) -> None:
    async def run() -> None:
        api = Api(ref_server.url, ref_server.api_key)
        try:
            await _exercise(api, data)
        finally:
            await api.aclose()

    asyncio.run(run())


async def test_server_still_serves_a_clean_session_after_the_fuzzing(api: Api) -> None:
    assert (await api.http.get("/health")).status_code == 200
    s = await api.create()
    stream = await api.stream(s["session_id"])
    await stream.recv()
    await stream.send_audio(silence(6 * WORD_BYTES))
    await stream.send_json({"type": "finalize"})
    assert (await stream.drain_until_closed()).code == 1000
    assert stream.final_words() == expected_words(6)

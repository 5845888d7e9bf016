"""Bad input gets its documented answer (PROTOCOL.md), and the target still serves a clean
session afterwards.

Stream: malformed JSON, an unknown message type, text where audio belongs, an audio frame too
short for its offset header, an odd-length payload, an oversized frame, audio after finalize, a
finalized session reopened, a wrong token, another session's token, an unknown session. HTTP: a
wrong API key, an unknown session, a bad engine name. Each case uses a fresh session, so one
answer cannot hide another.
"""

from __future__ import annotations

import struct
from dataclasses import replace

import pytest
from conformance_kit import (
    PIPELINE_TIMEOUT_S,
    SCRIPT,
    connect,
    driver_verdict,
    drain_to_close,
    expect_ready,
    expected_words,
    http,
    new_session,
    run_session,
    scripted_params,
    scripted_pcm,
    send_all,
    wait_acked,
)

from harness.checks import conformance, integrity
from harness.drivers._common import StreamConnectError
from harness.drivers.session import SessionPlan
from harness.protocols.events import Closed, Error

ANSWER_TIMEOUT_S = 3.0


async def _answer(stream, timeout: float = ANSWER_TIMEOUT_S) -> list:
    """What came back after a bad input: events up to the first error or close (bounded)."""
    try:
        return await stream.recv_until(lambda e: isinstance(e, (Error, Closed)), timeout=timeout)
    except TimeoutError:
        return []


def _offset(n: int) -> bytes:
    return struct.pack("<Q", n)


# case -> (frame to send after ready, documented errors, documented closes)
STREAM_CASES = {
    "malformed JSON": ('{"type": "finalize"', ["bad_message"], []),
    "unknown message type": ('{"type": "rewind"}', ["bad_message"], []),
    "text where audio belongs": ("RIFF\x24\x00\x00\x00WAVEfmt \x10\x00", ["bad_message"], []),
    "audio frame shorter than its offset header": (b"\x00\x01\x02", ["bad_frame"], []),
    "odd-length audio payload": (_offset(0) + b"\x01\x02\x03", ["bad_frame"], []),
}


async def _stream_case(target, scenario, case: str, frame, errors, closes) -> None:
    h = scenario.history(case=case)
    session = await new_session(target, h)
    stream = await connect(target, session, h)
    async with stream:
        await expect_ready(stream)
        await stream.send_raw(frame)
        scenario.run_check(conformance.error_answer, case, await _answer(stream), errors, closes, who=f"session {session.session_id}")
        await stream.close()


async def _oversized(target, scenario) -> None:
    case = "oversized audio frame"
    h = scenario.history(case=case)
    session = await new_session(target, h)
    stream = await connect(target, session, h)
    async with stream:
        ready = await expect_ready(stream)
        limit = ready.max_frame_bytes or 32768
        await stream.send_raw(_offset(0) + bytes(limit + 2))
        scenario.check(conformance.error_answer(case, await _answer(stream), ["frame_too_large"], [1009],
                                                who=f"session {session.session_id} (max_frame_bytes {limit})"))
        await stream.close()


async def _after_finalize(target, scenario) -> None:
    h = scenario.history(case="audio after finalize")
    session = await new_session(target, h)
    pcm = scripted_pcm(3)
    stream = await connect(target, session, h)
    async with stream:
        await expect_ready(stream)
        await send_all(stream, pcm)
        await wait_acked(stream, len(pcm))
        await stream.send_control("finalize")
        await stream.send_audio(len(pcm), pcm[:3200])
        answer = await _answer(stream, timeout=PIPELINE_TIMEOUT_S)
        scenario.check(conformance.error_answer("audio after finalize", answer, ["session_closed"], [4410],
                                                who=f"session {session.session_id}"))
        await drain_to_close(stream)
    # The session is finalized now: a new stream for it is refused with 4410.
    again = await connect(target, session, h, attempt=1)
    async with again:
        scenario.check(conformance.error_answer("stream to a finalized session", await _answer(again), [], [4410],
                                                who=f"session {session.session_id}"))


async def _refused_stream(target, scenario, case: str, session, headers=None, closes=(1008,)) -> None:
    """A stream that must be refused before any other message."""
    h = scenario.history(case=case)
    try:
        stream = await connect(target, session, h, headers=headers)
    except StreamConnectError as exc:
        events = [Closed(0, f"handshake refused: {exc}")]
    else:
        async with stream:
            events = await _answer(stream)
            if events and not isinstance(events[0], Closed):
                events = [Error("protocol", f"{events[0].type} came before the refusal")] + events
    scenario.run_check(conformance.error_answer, case, events, [], list(closes))


@pytest.mark.needs("session_api", "v1_frames")
async def test_bad_input_gets_documented_answers(scenario, target):
    for case, (frame, errors, closes) in STREAM_CASES.items():
        await _stream_case(target, scenario, case, frame, errors, closes)
    await _oversized(target, scenario)
    await _after_finalize(target, scenario)

    # Credentials and unknown sessions.
    h = scenario.history(case="credentials")
    a = await new_session(target, h)
    b = await new_session(target, h)
    await _refused_stream(target, scenario, "stream with a wrong token", a, headers={"Authorization": "Bearer not-a-token"})
    await _refused_stream(target, scenario, "stream with another session's token", a,
                          headers={"Authorization": f"Bearer {b.token}"})
    await _refused_stream(target, scenario, "stream for an unknown session", replace(a, session_id="no-such-session", token=None),
                          closes=(4404,))
    wrong_key = await http(target, "GET", f"/v1/sessions/{a.session_id}", headers={"Authorization": "Bearer wrong"})
    scenario.run_check(conformance.http_answer, "GET with a wrong API key", wrong_key.status_code, [401])
    unknown = await http(target, "GET", "/v1/sessions/no-such-session")
    scenario.run_check(conformance.http_answer, "GET an unknown session", unknown.status_code, [404])
    bad_engine = await http(target, "POST", "/v1/sessions", json={"engine": "no-such-engine", "sample_rate": 16000})
    scenario.run_check(conformance.http_answer, "create with an unknown engine", bad_engine.status_code, [400], bad_engine.text)
    for s in (a, b):
        await http(target, "DELETE", f"/v1/sessions/{s.session_id}")

    # After all that, a clean session still works, word for word.
    clean = scenario.history(case="clean session afterwards", script=SCRIPT, expected_text=" ".join(expected_words(6)))
    outcome = await run_session(target, SessionPlan(pcm=scripted_pcm(6), params=scripted_params(), pace=0), clean)
    scenario.check(driver_verdict(outcome))
    scenario.run_check(conformance.stream_lifecycle, clean)
    for v in integrity.all_checks(clean):  # words, segments, replays, order, gaps
        scenario.check(v)
    scenario.verify()

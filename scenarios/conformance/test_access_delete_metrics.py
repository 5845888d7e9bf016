"""Three promises a client and an operator lean on, checked against the target:

- a wrong API key is refused: at session creation where there is one (401/403), otherwise at the
  stream (handshake 401/403, or a close before any answer);
- ``DELETE /v1/sessions/{id}`` answers 204 and the session is gone (``GET`` answers 404);
- ``GET /metrics`` is a Prometheus exposition of the same figures as ``/v1/stats``.
"""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from conformance_kit import (
    drain_to_close,
    http,
    scripted_params,
    scripted_pcm,
    send_all,
    stream_target,
    wait_state,
)

from harness.checks import conformance, health
from harness.checks.verdict import safe_check
from harness.drivers.asyncio_driver import StreamConnectError, create_session, open_stream
from harness.protocols import SessionCreateError, SessionParams, get_codec

ANSWER_WAIT_S = 5.0  # how long a wrongly keyed stream is given to answer (it must not) or close


@pytest.mark.needs("api_key")
async def test_wrong_key_is_refused(scenario, target, protocol, capabilities):
    codec = get_codec(protocol)
    h = scenario.history(case="wrong API key", protocol=protocol)
    wrong = dataclasses.replace(stream_target(target), api_key="not-the-key-" + target.api_key[:4][::-1])
    params = scripted_params() if "scripted_engine" in capabilities else SessionParams(engine="pocketsphinx")
    stream = None
    if codec.create_session_request(wrong, params) is not None:  # the key is checked at creation
        try:
            await create_session(codec, wrong, params, history=h)
        except SessionCreateError:
            pass
    else:
        try:
            stream = await open_stream(codec, wrong, codec.local_session(params), history=h)
        except StreamConnectError:
            pass
    if stream is not None:
        try:  # open_stream has sent the protocol's opening frames: now audio a wrong key must not get served
            await send_all(stream, scripted_pcm(2))
        except Exception:  # noqa: BLE001 - a server that closes at once may refuse the send too
            pass
        await drain_to_close(stream, timeout=ANSWER_WAIT_S, history=h)
        stream.ws.transport.abort()
    scenario.check(safe_check(conformance.wrong_key_refused, h))
    scenario.verify()


@pytest.mark.needs("session_api", "delete", "scripted_engine")
async def test_delete_removes_the_session(scenario, target, protocol):
    codec = get_codec(protocol)
    h = scenario.history(case="finalize, then DELETE", protocol=protocol)
    session = await create_session(codec, stream_target(target), scripted_params(), history=h)
    stream = await open_stream(codec, stream_target(target), session, history=h)
    await send_all(stream, scripted_pcm(3))
    await stream.send_control(codec.finalize_control)
    await drain_to_close(stream, history=h)
    await wait_state(target, session.session_id)
    deleted = await http(target, "DELETE", f"/v1/sessions/{session.session_id}", history=h)
    scenario.check(conformance.http_answer("delete a completed session", deleted.status_code, (204,)))
    after = await http(target, "GET", f"/v1/sessions/{session.session_id}", history=h)
    scenario.check(conformance.http_answer("read a deleted session", after.status_code, (404,), after.text))
    scenario.verify()


@pytest.mark.needs("stats")
async def test_metrics_match_stats(scenario, target):
    scenario.history(case="GET /v1/stats, /metrics, /v1/stats")
    answers = []
    for path in ("/v1/stats", "/metrics", "/v1/stats"):
        resp = await http(target, "GET", path)
        resp.raise_for_status()
        answers.append(resp)
        await asyncio.sleep(0)
    scenario.check(safe_check(health.metrics_match_stats, answers[0].json(), answers[1].text, answers[2].json()))
    scenario.verify()

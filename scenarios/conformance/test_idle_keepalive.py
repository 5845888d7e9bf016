"""A silent stream is closed at the idle timeout with the documented close, and a keepalive holds
a silent stream open past it.

Two streams open side by side and each sends a little audio, then falls silent; both keep reading
(so pings are answered: this is silence, not a vanished client). One sends a keepalive every few
seconds, the other nothing. The silent one must be closed by the server within the idle timeout
(``ready.idle_timeout_s``, or the codec's documented ``idle_timeout_s``) with the protocol's idle
close (4408; Deepgram 1011 ``NET-0001``). The kept one must still be open a while after its twin
was closed (so the keepalives, not a lenient timer, held it), and must then take the rest of its
audio and finalize normally.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from conformance_kit import (
    drain_to_close,
    expect_ready,
    expected_words,
    http,
    scripted_params,
    scripted_pcm,
    send_all,
    stream_target,
    wait_acked,
)

from harness.checks import conformance, integrity, liveness
from harness.checks.verdict import safe_check
from harness.drivers.asyncio_driver import AsyncStream, create_session, open_stream
from harness.protocols import SessionParams, get_codec
from harness.protocols.base import idle_close

WORDS_BEFORE, WORDS_AFTER = 2, 2
MARGIN_S = 5.0  # the close handshake and a busy machine
HOLD_AFTER_TWIN_S = 3.0  # how long the kept stream must outlive its silent twin's close


async def _open(target, codec, h, params) -> tuple[AsyncStream, float | None]:
    session = await create_session(codec, stream_target(target), params, history=h)
    stream = await open_stream(codec, stream_target(target), session, history=h)
    limit = None
    if codec.sends_ready:
        limit = (await expect_ready(stream)).idle_timeout_s
    return stream, limit


@pytest.mark.needs("keepalive", "idle_timeout")
@pytest.mark.catches("idle-never", "keepalive-ignored")
async def test_keepalive_holds_and_silence_is_closed(scenario, target, protocol, capabilities):
    scripted = "scripted_engine" in capabilities
    params = scripted_params() if scripted else SessionParams(engine="pocketsphinx")
    kept_codec, silent_codec = get_codec(protocol), get_codec(protocol)
    hk = scenario.history(case="kept alive", protocol=protocol)
    hs = scenario.history(case="silent", protocol=protocol)
    kept, limit_k = await _open(target, kept_codec, hk, params)
    silent, limit_s = await _open(target, silent_codec, hs, params)
    limit = limit_k or limit_s or getattr(kept_codec, "idle_timeout_s", None)
    assert limit, f"protocol {protocol!r} has the idle_timeout capability but neither ready nor the codec says the timeout"
    period = min(3.0, limit / 3)
    pcm = scripted_pcm(WORDS_BEFORE + WORDS_AFTER)
    head = WORDS_BEFORE * (len(pcm) // (WORDS_BEFORE + WORDS_AFTER))
    try:
        for stream in (kept, silent):
            await send_all(stream, pcm[:head])
            if "offsets" in capabilities:
                await wait_acked(stream, head)
        hk.add("note", text=f"silence begins; keepalive every {period:g} s, idle timeout {limit:g} s")
        start = time.monotonic()
        deadline = start + limit + MARGIN_S + HOLD_AFTER_TWIN_S
        twin_closed_at: float | None = None
        while time.monotonic() < deadline and not kept.closed:  # bounded: the timeout, a margin and the hold
            await kept.send_control("keepalive")
            await asyncio.gather(kept.drain(period), silent.drain(period) if not silent.closed else asyncio.sleep(0))
            if silent.closed and twin_closed_at is None:
                twin_closed_at = time.monotonic()
            if twin_closed_at is not None and time.monotonic() - twin_closed_at >= HOLD_AFTER_TWIN_S:
                break
        held_s = (twin_closed_at - start if twin_closed_at else limit) + HOLD_AFTER_TWIN_S
        hk.add("note", text="silence ends: the kept stream was still open" if not kept.closed else "silence ends")
        scenario.check(safe_check(liveness.idle_close, hs, limit_s=limit, margin_s=MARGIN_S,
                                  expected=idle_close(silent_codec)))
        scenario.check(safe_check(liveness.keepalive_holds, hk, held_s=held_s - 0.5))
        if not kept.closed:  # the rest of the audio, then the normal end
            await send_all(kept, pcm, start=head)
            await kept.send_control(kept_codec.finalize_control)
            await drain_to_close(kept, history=hk)
            scenario.check(safe_check(conformance.stream_lifecycle, hk, expect_speech=False,
                                      ready="ready" in capabilities, acks="offsets" in capabilities))
            if scripted:  # the audio before and after the silence, each word once
                want = expected_words(WORDS_BEFORE + WORDS_AFTER)
                scenario.check(safe_check(integrity.completeness, hk, baseline=want))
                scenario.check(safe_check(integrity.duplicates, hk, baseline=want))
    finally:
        for stream in (kept, silent):
            stream.ws.transport.abort()
        if "delete" in capabilities:
            for h in (hk, hs):
                if h.session_id:
                    await http(target, "DELETE", f"/v1/sessions/{h.session_id}")
    scenario.verify()

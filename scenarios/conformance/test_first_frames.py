"""First audio frames that race each other do not double the transcript: the first frames in one
burst on one stream, and two connections to one session sending their first frame at once
(scripted engine: a doubled word is audio taken twice); and, on any protocol, a whole utterance
sent in one burst is heard once, through the target's own recognizer.

Catches ``duplicate-engine-race``: two engine instances opened for one session, each
transcribing the same audio.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from conformance_kit import (
    MAX_WER,
    SCRIPT,
    connect,
    drain_to_close,
    driver_verdict,
    expected_words,
    fixture_meta,
    new_session,
    run_session,
    scripted_pcm,
    send_all,
    wait_acked,
)

from harness.checks import accuracy, delivery, integrity
from harness.checks.verdict import safe_check
from harness.drivers.session import SessionPlan
from harness.protocols import SessionParams
from harness.protocols.events import Closed

WORDS = 8
FRAME = 3200  # 100 ms
SUPERSEDE_WAIT_S = 5.0
BURST, BURST_FRAME = 20, 640  # the first 400 ms as 20 frames of 20 ms, sent together
BURST_FIXTURE = "meeting-01-rms"


@pytest.mark.needs("session_api", "v1_frames", "scripted_engine")
@pytest.mark.catches("duplicate-engine-race")
async def test_first_frames_in_one_burst(scenario, target):
    h = scenario.history(script=SCRIPT, expected_text=" ".join(expected_words(WORDS)), race="one stream")
    session = await new_session(target, h)
    pcm = scripted_pcm(WORDS)
    stream = await connect(target, session, h)
    async with stream:
        # The first frames leave in one burst as soon as the stream is open, so they wait in the
        # server's queue together and are all taken while its engine is still opening.
        burst = range(0, BURST * BURST_FRAME, BURST_FRAME)
        await asyncio.gather(*[stream.send_audio(o, pcm[o:o + BURST_FRAME]) for o in burst])
        await send_all(stream, pcm, chunk=FRAME, start=BURST * BURST_FRAME)
        await wait_acked(stream, len(pcm))
        await stream.send_control("finalize")
        await drain_to_close(stream)
    for v in integrity.all_checks(h):  # words, segments, replays, order, gaps
        scenario.check(v)
    scenario.verify()


@pytest.mark.needs("session_api", "v1_frames", "scripted_engine")
async def test_two_connections_race_their_first_frame(scenario, target):
    h = scenario.history(script=SCRIPT, expected_text=" ".join(expected_words(WORDS)), race="two connections")
    session = await new_session(target, h)
    pcm = scripted_pcm(WORDS)
    a, b = await asyncio.gather(connect(target, session, h, attempt=0), connect(target, session, h, attempt=1))
    async with a, b:
        # Both send the same first frame at once; the offsets make the second copy a duplicate.
        # A connection already superseded cannot send: that is an allowed outcome of the race.
        await asyncio.gather(a.send_audio(0, pcm[:FRAME]), b.send_audio(0, pcm[:FRAME]), return_exceptions=True)
        # One connection supersedes the other (4409): wait for that close (bounded), then carry
        # on with the one still open.
        deadline = time.monotonic() + SUPERSEDE_WAIT_S
        while not (a.closed or b.closed) and time.monotonic() < deadline:
            for stream in (a, b):
                await stream.drain(0.05)
        open_ones = [stream for stream in (b, a) if not stream.closed]
        assert len(open_ones) == 1, (
            f"two connections to one session: {2 - len(open_ones)} closed within {SUPERSEDE_WAIT_S:g} s, "
            "expected exactly one superseded (4409)")
        survivor = open_ones[0]
        await send_all(survivor, pcm, chunk=FRAME, start=FRAME)
        await wait_acked(survivor, len(pcm))
        await survivor.send_control("finalize")
        await drain_to_close(survivor)
    for v in integrity.all_checks(h):  # words, segments, replays, order, gaps
        scenario.check(v)
    scenario.verify()


@pytest.mark.catches("duplicate-engine-race")
async def test_an_utterance_in_one_burst_is_heard_once(scenario, target, manifest, protocol, capabilities):
    """The whole utterance as fast as the connection takes it (no pacing), so its first frames
    arrive together while the recognizer is still opening: every word is heard once. Judged by
    WER against the fixture's text, so it needs no scripted engine."""
    fx = manifest.get(BURST_FIXTURE)
    h = scenario.history(**fixture_meta(fx), protocol=protocol, race="one burst")
    plan = SessionPlan(pcm=fx.pcm(), params=SessionParams(engine="pocketsphinx"), pace=0, finalize="stream")
    outcome = await run_session(target, plan, h, protocol)
    for v in (safe_check(driver_verdict, outcome), safe_check(accuracy.wer, h, max_wer=MAX_WER),
              safe_check(delivery.finals_once_per_connection, h, "segment_ids" in capabilities),
              safe_check(integrity.ordering, h)):
        scenario.check(v)
    scenario.verify()

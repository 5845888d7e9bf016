"""Audio sent the moment the stream opens (before ``ready`` arrives) is all accounted for: the
transcript has every word of it (scripted engine, compared word for word).

Catches ``early-audio-dropped``: a client that starts talking at once loses its first words,
with no error to tell it so.
"""

from __future__ import annotations

import pytest
from conformance_kit import (
    SCRIPT,
    connect,
    drain_to_close,
    expected_words,
    new_session,
    scripted_pcm,
    send_all,
    wait_acked,
)

from harness.checks import conformance, integrity

WORDS = 8


@pytest.mark.needs("session_api", "v1_frames", "scripted_engine")
@pytest.mark.catches("early-audio-dropped")
async def test_audio_before_ready_is_kept(scenario, target):
    h = scenario.history(script=SCRIPT, expected_text=" ".join(expected_words(WORDS)))
    session = await new_session(target, h)
    pcm = scripted_pcm(WORDS)
    stream = await connect(target, session, h)
    async with stream:
        await send_all(stream, pcm)  # no wait for ready: the first frames race the engine's start
        try:
            await wait_acked(stream, len(pcm))
        except TimeoutError as exc:  # the symptom ("no ack past offset N of M") stays in the history
            h.add("note", text=str(exc))
        await stream.send_control("finalize")
        await drain_to_close(stream)
    for v in integrity.all_checks(h):  # words, segments, replays, order, gaps
        scenario.check(v)
    scenario.run_check(conformance.stream_lifecycle, h)
    scenario.verify()

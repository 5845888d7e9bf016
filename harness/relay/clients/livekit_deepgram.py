"""LiveKit Agents' Deepgram plugin (``livekit-plugins-deepgram``) as the system under test.

``deepgram.STT(base_url=..., api_key=...)``, its ``stream()`` fed ``rtc.AudioFrame``s, as an agent
does with a participant's track; the final transcripts read from the stream's events, the errors
from the STT's ``error`` event. The plugin and livekit-agents are used as installed: nothing
patched, nothing subclassed.

Documented behaviour (livekit-agents 1.8, ``livekit/agents/types.py`` ``APIConnectOptions`` and
``stt/stt.py`` ``RecognizeStream._main_task``): ``max_retry=3``, ``retry_interval=2.0``,
``timeout=10``; the first retry after 0.1 s, then every 2 s; the budget starts over after a final
or after an attempt that outlived the connect timeout. The plugin sends ``KeepAlive`` every 5 s
and uses aiohttp's 30 s heartbeat (a stall that still answers pings is not noticed).
Audio pushed while it reconnects waits in the stream's input channel and is sent afterwards.
"""

from __future__ import annotations

import asyncio

from harness.relay.clients.base import SAMPLE_RATE, Case, Documented, Recorder, paced_audio

NAME = "livekit-deepgram"
DOCUMENTED = Documented(
    reconnects=True, retries_refusal=True, keepalive=True, detects_stall=False,
    retry_delays_s=(0.1, 2.0, 2.0), max_attempts=4,
    source="livekit-agents APIConnectOptions(max_retry=3, retry_interval=2.0, timeout=10); "
           "livekit-plugins-deepgram SpeechStream: KeepAlive every 5 s, heartbeat 30 s")


class LiveKitDeepgram:
    name = NAME
    documented = DOCUMENTED

    async def run(self, case: Case, rec: Recorder) -> None:
        import aiohttp
        from livekit import rtc
        from livekit.agents import stt as lk_stt
        from livekit.plugins import deepgram

        async with aiohttp.ClientSession() as http:
            engine = deepgram.STT(api_key=case.api_key, base_url=case.listen_url, http_session=http,
                                  sample_rate=SAMPLE_RATE)
            engine.on("error", lambda err: rec.error(f"{type(err.error).__name__}: {err.error}",
                                                     recoverable=err.recoverable))
            stream = engine.stream()

            async def feed() -> None:
                async for chunk in paced_audio(case, rec):
                    stream.push_frame(rtc.AudioFrame(chunk, SAMPLE_RATE, 1, len(chunk) // 2))
                await asyncio.sleep(case.drain_s)
                stream.end_input()

            feeder = asyncio.create_task(feed())
            try:
                async for ev in stream:
                    if ev.type == lk_stt.SpeechEventType.FINAL_TRANSCRIPT and ev.alternatives:
                        alt = ev.alternatives[0]
                        if alt.text.strip():
                            rec.final(alt.text, alt.start_time, alt.end_time)
                rec.end("finished")
            except Exception as exc:  # the stream raises what made it give up
                rec.end("gave_up", f"{type(exc).__name__}: {exc}")
            finally:
                feeder.cancel()
                await asyncio.gather(feeder, return_exceptions=True)
                await stream.aclose()


DRIVER = LiveKitDeepgram()

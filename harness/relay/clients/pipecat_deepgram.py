"""Pipecat's ``DeepgramSTTService`` as the system under test.

A minimal pipeline, ``[DeepgramSTTService(api_key=..., base_url=...), collector]``, run by
Pipecat's own ``PipelineWorker`` and ``WorkerRunner``; audio goes in as ``InputAudioRawFrame``s
queued on the worker (what a transport's input does), ``TranscriptionFrame``s are collected after
the service, ``ErrorFrame``s from the worker's ``on_pipeline_error`` event. The input ends with an
``EndFrame``. Nothing of Pipecat is patched.

Documented behaviour (pipecat-ai 1.14, ``services/deepgram/stt.py``
``DeepgramSTTService._connection_handler`` and ``utils/network.py``): after a lost connection it
reconnects with ``exponential_backoff_time`` (4 s at least, 10 s at most); it gives up after 3
connections in a row that stayed up under 5 s (``QuickFailureTracker``); a 4xx at the handshake
(a 429 too) is permanent: no retry. KeepAlive every 5 s. Audio that arrives while it is not
connected is not sent (``run_stt`` drops it). The SDK's websocket answers pings, so a stall is
not noticed.
"""

from __future__ import annotations

import asyncio

from harness.relay.clients.base import SAMPLE_RATE, Case, Documented, Recorder, paced_audio

NAME = "pipecat-deepgram"
DOCUMENTED = Documented(
    reconnects=True, retries_refusal=False, keepalive=True, detects_stall=False,
    retry_delays_s=(4.0, 4.0, 4.0), max_attempts=None,
    source="pipecat-ai DeepgramSTTService._connection_handler: exponential_backoff_time (4-10 s), "
           "QuickFailureTracker(min_stable_duration=5, max_consecutive_failures=3), 4xx permanent; "
           "KeepAlive every 5 s")


class PipecatDeepgram:
    name = NAME
    documented = DOCUMENTED

    async def run(self, case: Case, rec: Recorder) -> None:
        from pipecat.frames.frames import EndFrame, InputAudioRawFrame, TranscriptionFrame
        from pipecat.pipeline.pipeline import Pipeline
        from pipecat.pipeline.worker import PipelineParams, PipelineWorker
        from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
        from pipecat.services.deepgram.stt import DeepgramSTTService
        from pipecat.workers.runner import WorkerRunner

        class Collector(FrameProcessor):
            """The application's end of the pipeline: writes down each final transcript."""

            async def process_frame(self, frame, direction: FrameDirection) -> None:  # noqa: ANN001
                await super().process_frame(frame, direction)
                if isinstance(frame, TranscriptionFrame) and frame.text.strip():
                    result = getattr(frame, "result", None)
                    start = getattr(result, "start", None)
                    duration = getattr(result, "duration", None)
                    rec.final(frame.text, start, start + duration if start is not None and duration else None)
                await self.push_frame(frame, direction)

        stt = DeepgramSTTService(api_key=case.api_key, base_url=case.vendor_url, sample_rate=SAMPLE_RATE)
        worker = PipelineWorker(Pipeline([stt, Collector()]), params=PipelineParams(audio_in_sample_rate=SAMPLE_RATE),
                                enable_rtvi=False, idle_timeout_secs=None, check_dangling_tasks=False)

        @worker.event_handler("on_pipeline_error")
        async def on_error(_worker, frame) -> None:  # noqa: ANN001
            rec.error(str(frame.error), recoverable=not getattr(frame, "fatal", False))

        async def feed() -> None:
            async for chunk in paced_audio(case, rec):
                await worker.queue_frame(InputAudioRawFrame(audio=chunk, sample_rate=SAMPLE_RATE, num_channels=1))
            await asyncio.sleep(case.drain_s)
            await worker.queue_frame(EndFrame())

        feeder = asyncio.create_task(feed())
        try:
            await WorkerRunner(handle_sigint=False).run(worker)
            rec.end("finished")
        except Exception as exc:
            rec.end("gave_up", f"{type(exc).__name__}: {exc}")
        finally:
            feeder.cancel()
            await asyncio.gather(feeder, return_exceptions=True)


DRIVER = PipecatDeepgram()

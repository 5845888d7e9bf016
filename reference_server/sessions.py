"""Sessions: creation, state transitions, audio intake, engine feeding, the one finalize path, deletion.

Everything that changes a session goes through ``SessionManager``, on the event loop. Engine calls
run in worker threads, one caller per session at a time (``feed_lock``); finals are written to the
store in that thread, before they are sent. Planted defects live at the line where the real bug
would be, each marked ``# defect <name>``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import time
import uuid
from collections.abc import Callable
from typing import Any

from .config import ServerConfig
from .engines import BYTES_PER_MS, ENGINES, EngineConfig, FinalResult, create_engine
from .framing import take
from .session_runtime import Chunk, SessionRuntime, StreamSink
from .session_states import (
    COMPLETED,
    CREATED,
    ENDED,
    FAILED,
    FINALIZED,
    FINALIZING,
    INTERRUPTED,
    PROCESSING,
    STREAMING,
    InvalidTransition,
    check_transition,
)
from .stats import Stats
from .store import Store
from .tracker import Tracker

log = logging.getLogger("reference_server.sessions")

# A stream stops reading (TCP pushes back on the client) while this much audio waits for the
# engine: memory per session stays bounded even when the engine falls behind real time.
BACKLOG_LIMIT_S = 10.0
BACKLOG_WAIT_MAX_S = 30.0
# defect early-audio-dropped: the engine's "warm-up" is the session's first 300 ms of audio (a byte
# count, not a time window, so the first word is lost on every run, however fast the machine)
EARLY_AUDIO_BYTES = 300 * BYTES_PER_MS
# defects finalize-not-idempotent and duplicate-engine-race: the first caller of an unguarded
# check-then-act waits this long at most for a second caller to pass the same check, so the
# race happens by construction instead of when the scheduler happens to interleave the two.
RACE_WINDOW_S = 1.5
UNBOUNDED_PARTIAL_COPY_BYTES = 32000  # defect unbounded-transcript: audio copied with each partial


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class SessionError(Exception):
    """A request about a session that cannot be honoured; ``field`` names the bad input if any."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field


class SessionManager:
    def __init__(self, config: ServerConfig, store: Store, tracker: Tracker, stats: Stats) -> None:
        self.config = config
        self.defects = config.defects
        self.store = store
        self.tracker = tracker
        self.stats = stats
        self.runtimes: dict[str, SessionRuntime] = {}
        self.pipelines: set[asyncio.Task[None]] = set()
        self._creations = 0
        self.backlog_limit = int(BACKLOG_LIMIT_S * 1000 * BYTES_PER_MS)
        # defect unbounded-transcript: a per-session cache of every partial (with a copy of the
        # audio behind it) that nothing ever evicts
        self.partial_cache: dict[str, dict[str, Any]] = {}
        # defects finalize-not-idempotent, duplicate-engine-race: (session, race) -> [callers, event]
        self._races: dict[tuple[str, str], tuple[list[int], asyncio.Event]] = {}
        self._staged_engines: dict[str, list[Any]] = {}
        from .pipeline.runner import PipelineRunner  # the runner calls back into this manager

        self.runner = PipelineRunner(self)

    # --- lookup and auth -----------------------------------------------------------------
    def get(self, session_id: str) -> SessionRuntime | None:
        rt = self.runtimes.get(session_id)
        if rt is not None:
            return rt
        row = self.store.get_session(session_id)
        if row is None:
            return None
        rt = SessionRuntime(row)
        if rt.state not in ENDED:  # ended sessions are read from the store, never kept in memory
            self.runtimes[session_id] = rt
        return rt

    def authorized(self, rt: SessionRuntime | None, credential: str | None) -> bool:
        """The API key opens everything; a session token opens its own session only."""
        if not credential:
            return False
        if hmac.compare_digest(credential.encode(), self.config.api_key.encode()):
            return True
        return rt is not None and hmac.compare_digest(hash_token(credential), rt.token_hash)

    def live_streams(self) -> int:
        return sum(1 for rt in self.runtimes.values() if rt.stream is not None)

    def active_buffers(self) -> int:
        holding = {rt.id for rt in self.runtimes.values() if rt.has_buffers}
        return len(holding | set(self.partial_cache))

    # --- creation ------------------------------------------------------------------------
    async def create(self, body: Any) -> tuple[SessionRuntime, str]:
        t0 = time.perf_counter()
        engine, script, metadata = self._validate_create(body)
        self._creations += 1
        if "slow-session-create" in self.defects and self._creations % 5 == 0:
            await asyncio.sleep(2.5)  # defect slow-session-create: one creation in five stalls
        if self.store.count_active() >= self.config.max_sessions:
            raise SessionError(503, "overloaded",
                               f"at capacity: {self.config.max_sessions} active sessions (max_sessions)")
        session_id = str(uuid.uuid4())
        token = secrets.token_urlsafe(24)
        now = time.time()
        self.store.create_session(session_id, state=CREATED, engine=engine, script=script, metadata=metadata,
                                  token_hash=hash_token(token), created_at=now)
        self.tracker.begin(session_id)
        rt = self.get(session_id)
        assert rt is not None
        self.stats.session_created((time.perf_counter() - t0) * 1000)
        return rt, token

    def _validate_create(self, body: Any) -> tuple[str, str, dict[str, Any]]:
        def bad(field: str, message: str) -> SessionError:
            return SessionError(400, "bad_request", message, field)

        if not isinstance(body, dict):
            raise bad("body", "request body must be a JSON object")
        engine = body.get("engine", self.config.engine)
        if engine not in ENGINES:
            raise bad("engine", f"engine must be one of {', '.join(ENGINES)}; got {engine!r}")
        sample_rate = body.get("sample_rate", 16000)
        if sample_rate != 16000 or isinstance(sample_rate, bool):
            raise bad("sample_rate", f"sample_rate must be 16000 (16 kHz s16le mono); got {sample_rate!r}")
        metadata = body.get("metadata", {})
        if metadata is None:
            metadata = {}
        if not isinstance(metadata, dict):
            raise bad("metadata", f"metadata must be a JSON object; got {type(metadata).__name__}")
        for key in ("script_word_ms", "script_segment_words"):
            value = metadata.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
                raise bad(f"metadata.{key}", f"metadata.{key} must be a positive integer; got {value!r}")
        hold = metadata.get("hold_step")
        if hold is not None and self.config.test_hooks:  # without test hooks it is ignored, like any metadata
            from .pipeline.runner import STEP_NAMES

            if hold not in STEP_NAMES:
                raise bad("metadata.hold_step", f"metadata.hold_step must be one of {', '.join(STEP_NAMES)}; got {hold!r}")
        script = body.get("script", "")
        if engine == "scripted":
            if not isinstance(script, str) or not script.split():
                raise bad("script", "script is required for the scripted engine: a non-empty string of words")
        elif script is None:
            script = ""
        elif not isinstance(script, str):
            raise bad("script", f"script must be a string; got {type(script).__name__}")
        return engine, script, metadata

    # --- state ---------------------------------------------------------------------------
    def transition(self, rt: SessionRuntime, target: str, *, strict: bool = True) -> bool:
        """Move to ``target`` (persisted). An invalid move is recorded by the tracker and raises
        InvalidTransition, or with strict=False is recorded, skipped and reported as False."""
        try:
            check_transition(rt.id, rt.state, target)
        except InvalidTransition:
            self.tracker.invalid_transition(rt.id, rt.state, target)
            if strict:
                raise
            return False
        rt.state = target
        if not rt.deleted:
            self.store.set_state(rt.id, target, received_offset=rt.received_offset)
        return True

    def transition_stored(self, rt: SessionRuntime, target: str,
                          event: tuple[str, float, dict[str, Any]] | None) -> bool:
        """The pipeline's end: its last event and the end state in one store transaction.
        False if the session is gone."""
        if rt.deleted:
            return False
        try:
            check_transition(rt.id, rt.state, target)
        except InvalidTransition:
            # Only reachable when a second pipeline run slipped through (defect
            # finalize-not-idempotent): recorded, and its event is still stored as it happened.
            self.tracker.invalid_transition(rt.id, rt.state, target)
            if event is not None:
                self.store.add_event(rt.id, *event)
            return True
        self.store.finish(rt.id, target, event)
        rt.state = target
        return True

    # --- streams -------------------------------------------------------------------------
    async def attach(self, rt: SessionRuntime, sink: StreamSink, last_segment_id: int,
                     send_ready: Any) -> bool:
        """Make ``sink`` the session's one live stream: supersede the old one (4409), send ready,
        replay finals after ``last_segment_id``. False if the session ended meanwhile."""
        async with rt.attach_lock:
            old, rt.stream = rt.stream, None
            if old is not None:
                await old.close(4409, "superseded by a newer connection")
            if rt.state in FINALIZED or rt.deleted:
                return False
            if rt.state != STREAMING:
                self.transition(rt, STREAMING)
            # After a restart R == D (audio past D was only in memory); on a live server the
            # client may resume from R, which it still holds since it keeps everything >= D.
            committed = rt.received_offset
            if "no-resume" in self.defects:
                committed = 0  # defect no-resume
            await send_ready(committed)
            self.tracker.stage(rt.id, "stream_attached", committed_offset=committed)
            rt.stream = sink
            # Replay under the sink's send order: a final persisted from here on is either in
            # this query or sent live afterwards (possibly both: clients dedupe by segment id).
            for final in self.store.finals(rt.id, after=last_segment_id):
                await sink.send({"type": "final", **final})
            return True

    def detach(self, rt: SessionRuntime, sink: StreamSink) -> None:
        """The connection is gone. A streaming session without a stream is interrupted."""
        if rt.stream is not sink:
            return  # superseded: the newer stream owns the session now
        rt.stream = None
        if rt.state == STREAMING and not rt.deleted:
            self.transition(rt, INTERRUPTED)
            self.tracker.stage(rt.id, "stream_detached", received_offset=rt.received_offset)

    # --- audio ---------------------------------------------------------------------------
    def take_audio(self, rt: SessionRuntime, offset: int, payload: bytes) -> str:
        """Apply the offset rules to one frame; returns duplicate, tail or gap."""
        now = time.monotonic()
        if "no-resume" in self.defects:
            decision_kind, data = "tail", payload  # defect no-resume: the offset header is ignored
        else:
            decision = take(rt.received_offset, offset, payload)
            decision_kind, data = decision.kind, decision.data
        if decision_kind != "tail":
            return decision_kind
        start = rt.received_offset
        rt.received_offset += len(data)
        if not rt.audio_seen:
            rt.audio_seen = True
            self.tracker.stage(rt.id, "audio_received", offset=start)
        if "unbounded-transcript" in self.defects:  # defect unbounded-transcript
            self.partial_cache.setdefault(rt.id, {"audio": bytearray(), "partials": []})["audio"] += data
        if "early-audio-dropped" in self.defects and start < EARLY_AUDIO_BYTES:
            return "tail"  # defect early-audio-dropped: taken and acked, never reaches the engine
        rt.push(Chunk(start, data, now), self.backlog_limit)
        self.tracker.waiting(rt.id, "engine", True)
        if rt.engines:
            self._kick_drain(rt)
        else:
            # The first frames open the engine; the open is guarded so frames that arrive
            # together while it loads still share one engine.
            asyncio.get_running_loop().create_task(self._open_then_drain(rt))
        return "tail"

    async def backpressure(self, rt: SessionRuntime) -> None:
        """Wait while the session's engine backlog is over the limit (bounded: an engine that
        makes no progress at all is the stall detector's to report, not a reason to hang)."""
        if not rt.drained.is_set():
            try:
                await asyncio.wait_for(rt.drained.wait(), timeout=BACKLOG_WAIT_MAX_S)
            except asyncio.TimeoutError:
                pass

    async def _open_then_drain(self, rt: SessionRuntime) -> None:
        try:
            await self._ensure_engines(rt)
        except Exception as exc:  # noqa: BLE001 - reported to the client, the session survives
            await self._engine_failed(rt, exc)
            return
        self._kick_drain(rt)

    async def _ensure_engines(self, rt: SessionRuntime) -> list[Any]:
        if "duplicate-engine-race" in self.defects:
            # defect duplicate-engine-race: check-then-open with no lock; callers that arrive while
            # an engine is loading each open one, and every engine gets all the audio.
            # The first opener waits for a second one (so the race fires every run), and the
            # engines are published together once two are open, so each gets all the audio.
            if not rt.engines:
                await self._race_window(rt, "engine-open")
                staged = self._staged_engines.setdefault(rt.id, [])
                staged.append(await self._open_engine(rt))
                await self._race_window(rt, "engine-opened")
                rt.engines.extend(staged)
                staged.clear()
            return rt.engines
        async with rt.engine_lock:
            if not rt.engines:
                rt.engines.append(await self._open_engine(rt))
        return rt.engines

    async def _open_engine(self, rt: SessionRuntime) -> Any:
        md = rt.metadata
        cfg = EngineConfig(
            sample_rate=16000, start_offset=rt.engine_base, max_segment_s=self.config.max_segment_s,
            script=rt.script, script_word_ms=int(md.get("script_word_ms", 300)),
            script_segment_words=int(md.get("script_segment_words", 5)),
        )
        engine = await asyncio.to_thread(create_engine, rt.engine_name, cfg)
        self.tracker.stage(rt.id, "transcription_started", engine=rt.engine_name, start_offset=rt.engine_base)
        return engine

    def _kick_drain(self, rt: SessionRuntime) -> None:
        if rt.drain_task is None or rt.drain_task.done():
            rt.drain_task = asyncio.get_running_loop().create_task(self._drain(rt))

    async def _drain(self, rt: SessionRuntime) -> None:
        async with rt.feed_lock:
            while rt.pending and rt.engines and not rt.deleted:
                if not await self._feed_pending(rt):
                    return
            if not rt.pending:
                self.tracker.waiting(rt.id, "engine", False)

    async def _feed_pending(self, rt: SessionRuntime) -> bool:
        """Give the engines everything pending (caller holds feed_lock). False if the engine failed."""
        chunks = rt.take_pending()
        pcm = b"".join(c.data for c in chunks)
        return await self._run_engines(rt, pcm, flush=False, t_oldest=chunks[0].t_recv)

    async def _run_engines(self, rt: SessionRuntime, pcm: bytes, *, flush: bool, t_oldest: float) -> bool:
        engines = list(rt.engines)
        try:
            out, next_seg, durable = await asyncio.to_thread(
                self._engine_work, rt.id, engines, pcm, flush, rt.next_segment_id, rt.durable_offset,
                rt.received_offset,
            )
        except Exception as exc:  # noqa: BLE001 - the engine's failure is the session's, not the server's
            await self._engine_failed(rt, exc)
            return False
        rt.next_segment_id, rt.durable_offset = next_seg, durable
        self.tracker.progress(rt.id)
        await self._deliver(rt, out, t_oldest)
        return True

    def _engine_work(self, session_id: str, engines: list[Any], pcm: bytes, flush: bool, next_seg: int,
                     durable: int, received: int) -> tuple[list[tuple[str, dict[str, Any]]], int, int]:
        """Worker thread: run the engines, number the segments, persist finals (before sending)."""
        results = []
        for engine in engines:
            results.extend(engine.flush() if flush else engine.accept(pcm))
        out: list[tuple[str, dict[str, Any]]] = []
        finals: list[dict[str, Any]] = []
        for r in results:
            if isinstance(r, FinalResult):
                if not r.text.strip():
                    continue  # an empty final would be a segment id with nothing in it
                final = {
                    "segment_id": next_seg, "text": r.text, "start_ms": r.start_ms, "end_ms": r.end_ms,
                    "words": [{"word": w.word, "start_ms": w.start_ms, "end_ms": w.end_ms,
                               "confidence": w.confidence} for w in r.words],
                }
                finals.append({**final, "boundary_offset": r.boundary_offset})
                out.append(("final", final))
                next_seg += 1
                durable = max(durable, r.boundary_offset)
            elif r.text.strip():
                out.append(("partial", {"segment_id": next_seg, "text": r.text, "start_ms": r.start_ms,
                                        "end_ms": r.end_ms}))
        if finals:
            self.store.add_finals(session_id, finals, durable_offset=durable, received_offset=received,
                                  next_segment_id=next_seg)
        return out, next_seg, durable

    async def _deliver(self, rt: SessionRuntime, out: list[tuple[str, dict[str, Any]]], t_oldest: float) -> None:
        sink = rt.stream
        any_final = False
        for kind, msg in out:
            if kind == "partial":
                if "stream-gap" in self.defects and rt.suppress_partials:
                    continue  # defect stream-gap
                if "unbounded-transcript" in self.defects:  # defect unbounded-transcript
                    cached = self.partial_cache.setdefault(rt.id, {"audio": bytearray(), "partials": []})
                    cached["partials"].append((msg, bytes(cached["audio"][-UNBOUNDED_PARTIAL_COPY_BYTES:])))
                if sink is not None:
                    await sink.send({"type": "partial", **msg})
                continue
            any_final = True
            rt.finals_emitted += 1
            if "stream-gap" in self.defects:
                # defect stream-gap: a flag set at the first flush and cleared at the next final
                rt.suppress_partials = rt.finals_emitted == 1
            self.stats.final_sent((time.monotonic() - t_oldest) * 1000)
            if sink is not None:
                await sink.send({"type": "final", **msg})
        if any_final and sink is not None:
            await sink.ack()  # the durable offset moved: let the client trim its buffer

    async def _engine_failed(self, rt: SessionRuntime, exc: Exception) -> None:
        """The engine broke: drop it and the audio it had not finalized; the client resumes from D."""
        log.exception("session %s: engine failed", rt.id, exc_info=exc)
        for engine in rt.engines:
            try:
                engine.close()
            except Exception:  # noqa: BLE001 - already failing; closing is best effort
                pass
        rt.engines = []
        rt.clear_pending()
        rt.received_offset = rt.engine_base = rt.durable_offset
        self.tracker.waiting(rt.id, "engine", False)
        self.tracker.stage(rt.id, "engine_failed", error=type(exc).__name__)
        sink = rt.stream
        if sink is not None:
            await sink.send({"type": "error", "code": "internal", "retryable": True,
                             "message": f"transcription engine failed ({type(exc).__name__}); resume from the durable offset"})
            await sink.close(1011, "engine failed")

    # --- finalize ------------------------------------------------------------------------
    async def finalize(self, rt: SessionRuntime, origin: str) -> str:
        """The one finalize path (HTTP, stream, Deepgram CloseStream): flush the engine, send the
        last finals, run the pipeline once in the background. Idempotent; returns the state."""
        if origin == "http" and "finalize-http-skips-pipeline" in self.defects:
            return await self._finalize_skipping_pipeline(rt)
        if "finalize-not-idempotent" in self.defects:
            return await self._finalize_unguarded(rt)
        async with rt.finalize_lock:
            if rt.state in FINALIZED or rt.deleted:
                return rt.state
            self.transition(rt, FINALIZING)
            self.tracker.stage(rt.id, "finalize_requested", origin=origin)
            await self._flush(rt)
            self.transition(rt, PROCESSING)
            self._start_pipeline(rt)
            return rt.state

    async def _finalize_unguarded(self, rt: SessionRuntime) -> str:
        # defect finalize-not-idempotent: no lock, and the only check is for a finished session,
        # made before the flush awaits; concurrent callers all get through and each runs the pipeline.
        if rt.state in ENDED or rt.deleted:
            return rt.state
        await self._race_window(rt, "finalize")
        self.transition(rt, FINALIZING, strict=False)
        await self._flush(rt)
        self.transition(rt, PROCESSING, strict=False)
        self._start_pipeline(rt)
        return rt.state

    async def _race_window(self, rt: SessionRuntime, race: str) -> None:
        """Planted races only: the first caller past an unguarded check waits (at most
        RACE_WINDOW_S) until a second caller is past it too; later callers go straight on. Holding
        the first caller where the real bug leaves a window open makes the race fire every run."""
        callers, second_arrived = self._races.setdefault((rt.id, race), ([0], asyncio.Event()))
        callers[0] += 1
        if callers[0] > 1:
            second_arrived.set()
            return
        try:
            await asyncio.wait_for(second_arrived.wait(), RACE_WINDOW_S)
        except asyncio.TimeoutError:
            pass  # nobody raced this time: go on alone, as the unguarded code would

    async def _finalize_skipping_pipeline(self, rt: SessionRuntime) -> str:
        # defect finalize-http-skips-pipeline: the HTTP route marks the session done itself.
        async with rt.finalize_lock:
            if rt.state in FINALIZED or rt.deleted:
                return rt.state
            self.transition(rt, FINALIZING)
            await self._flush(rt)
            self.transition(rt, PROCESSING)
            self.transition(rt, COMPLETED)
            self.tracker.end(rt.id, COMPLETED)
            self._evict(rt)
            return rt.state

    async def flush_mid_stream(self, rt: SessionRuntime, before_flush: Callable[[], None] | None = None) -> None:
        """Feed what is pending and flush the engines, which go on taking audio afterwards
        (Deepgram's Finalize). Finals come out through the attached stream as usual;
        ``before_flush`` runs between the two, so a caller can tell the flush's finals apart."""
        async with rt.feed_lock:
            await self._flush_locked(rt, before_flush)

    async def _flush_locked(self, rt: SessionRuntime, before_flush: Callable[[], None] | None = None) -> None:
        if rt.pending and not rt.engines:
            try:
                await self._ensure_engines(rt)
            except Exception as exc:  # noqa: BLE001
                await self._engine_failed(rt, exc)
        if rt.pending and rt.engines and not await self._feed_pending(rt):
            return  # the engine failed: reported to the client; what is stored stays
        if before_flush is not None:
            before_flush()
        if rt.engines:
            await self._run_engines(rt, b"", flush=True, t_oldest=time.monotonic())
        if not rt.pending:
            self.tracker.waiting(rt.id, "engine", False)

    async def _flush(self, rt: SessionRuntime) -> None:
        """Finalize's flush: feed what is pending, flush and close the engines; their last
        finals are sent."""
        async with rt.feed_lock:
            await self._flush_locked(rt)
            for engine in rt.engines:
                engine.close()
            rt.engines = []
            rt.clear_pending()
        self.tracker.waiting(rt.id, "engine", False)
        self.tracker.stage(rt.id, "transcription_completed", received_offset=rt.received_offset,
                           durable_offset=rt.durable_offset, segments=rt.next_segment_id)
        if not rt.deleted:
            self.store.set_received(rt.id, rt.received_offset)

    def _start_pipeline(self, rt: SessionRuntime, *, resume: bool = False) -> None:
        task = asyncio.get_running_loop().create_task(self.runner.run(rt, resume=resume))
        rt.pipeline_task = task
        self.pipelines.add(task)
        task.add_done_callback(self.pipelines.discard)

    async def pipeline_finished(self, rt: SessionRuntime, state: str) -> None:
        """Called by the runner once its last event is stored and sent: close the stream 1000."""
        if state == FAILED:
            self.stats.session_failed()
        self.tracker.end(rt.id, state)
        sink = rt.stream
        if sink is not None:
            rt.stream = None
            await sink.close(1000, "session complete")
        self._evict(rt)

    def _evict(self, rt: SessionRuntime) -> None:
        if rt.state in ENDED and rt.stream is None and self.runtimes.get(rt.id) is rt:
            del self.runtimes[rt.id]
            for race in [key for key in self._races if key[0] == rt.id]:  # planted races only
                del self._races[race]
            self._staged_engines.pop(rt.id, None)

    async def send_event(self, rt: SessionRuntime, message: dict[str, Any]) -> None:
        sink = rt.stream
        if sink is not None:
            await sink.send(message)

    # --- deletion ------------------------------------------------------------------------
    async def delete(self, rt: SessionRuntime) -> None:
        rt.deleted = True
        if rt.pipeline_task is not None and not rt.pipeline_task.done():
            rt.pipeline_task.cancel()
        sink, rt.stream = rt.stream, None
        if sink is not None:
            await sink.close(4404, "session deleted")
        async with rt.feed_lock:  # never close an engine a worker thread is inside
            for engine in rt.engines:
                engine.close()
            rt.engines = []
            rt.clear_pending()
        self.store.delete_session(rt.id)
        self.tracker.end(rt.id, "deleted")
        self.runtimes.pop(rt.id, None)

    # --- process lifecycle ---------------------------------------------------------------
    async def recover(self) -> None:
        """After a restart: streaming sessions become interrupted (done by the store), and
        pipelines that were running pick up where their stored events stop."""
        interrupted = self.store.recover_after_restart()
        if interrupted:
            log.warning("%d streaming sessions marked interrupted after restart", interrupted)
        self.tracker.load_open()
        for session_id in self.store.session_ids_in([FINALIZING, PROCESSING]):
            rt = self.get(session_id)
            if rt is None:
                continue
            if rt.state == FINALIZING:  # died mid-flush: the engine is gone, finals are stored
                self.transition(rt, PROCESSING)
            self._start_pipeline(rt, resume=True)

    async def close_streams(self, code: int, reason: str) -> None:
        sinks = [rt.stream for rt in self.runtimes.values() if rt.stream is not None]
        await asyncio.gather(*(s.close(code, reason) for s in sinks), return_exceptions=True)

    async def shutdown(self) -> None:
        """Stop pipelines (they resume after restart) and mark live sessions interrupted."""
        for task in list(self.pipelines):
            task.cancel()
        await asyncio.gather(*self.pipelines, return_exceptions=True)
        for rt in list(self.runtimes.values()):
            if rt.state == STREAMING:
                rt.stream = None
                self.transition(rt, INTERRUPTED, strict=False)
            for engine in rt.engines:
                try:
                    engine.close()
                except Exception:  # noqa: BLE001 - shutting down
                    pass
            rt.engines = []

    def audio_ms(self, rt: SessionRuntime) -> int:
        return max(rt.received_offset, rt.durable_offset) // BYTES_PER_MS

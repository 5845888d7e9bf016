"""Runs the post-transcription pipeline of a finalized session: events, results, exactly once.

Event order (PROTOCOL.md): ``session_finalized``; per step ``<step>_started`` then ``<step>_ready``
or ``<step>_failed`` (a failed step does not stop the others); ``post_transcription_reveal``;
``dashboard_refresh``. Each event is stored before it is sent, so ``GET /v1/sessions/{id}`` shows
them in order whether or not a client is connected. The runner is started once per session by the
finalize path; after a restart it resumes from the stored events without repeating any.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from ..session_states import COMPLETED, FAILED
from ..timefmt import iso

if TYPE_CHECKING:
    from ..session_runtime import SessionRuntime
    from ..sessions import SessionManager

log = logging.getLogger("reference_server.pipeline")

STEP_NAMES: tuple[str, ...] = ("refinement", "analytics", "tasks", "summary")
# GET /v1/sessions/{id} names the refinement step's output "refined_transcript".
RESULT_KEYS: dict[str, str] = {"refinement": "refined_transcript", "analytics": "analytics",
                               "tasks": "tasks", "summary": "summary"}


class PipelineRunner:
    def __init__(self, manager: SessionManager) -> None:
        self.manager = manager
        self.store = manager.store
        self.tracker = manager.tracker
        self.defects = manager.defects
        self.test_hooks = manager.config.test_hooks

    async def run(self, rt: SessionRuntime, *, resume: bool = False) -> None:
        from .steps import STEPS, PipelineInput  # pure step functions, one per step

        done: list[str] = [e["name"] for e in self.store.events(rt.id)] if resume else []
        self.tracker.waiting(rt.id, "pipeline", True)
        try:
            finals = self.store.finals(rt.id)
            audio_ms = self.manager.audio_ms(rt)
            if "session_finalized" not in done:
                await self._emit(rt, "session_finalized", {"segments": len(finals), "audio_ms": audio_ms})
            stored = self.store.results(rt.id) if resume else {}
            refined: dict[str, Any] | None = stored.get("refinement")
            failed = False
            for name, step in STEPS:
                if f"{name}_ready" in done:
                    continue
                if f"{name}_failed" in done:
                    failed = True
                    continue
                if f"{name}_started" not in done:
                    await self._emit(rt, f"{name}_started", {"step": name})
                await self._hold(rt, name)
                try:
                    inp = self._input(PipelineInput, finals, audio_ms, refined)
                    result = await asyncio.to_thread(step, inp)
                    if not isinstance(result, dict):
                        raise TypeError(f"step {name} returned {type(result).__name__}, expected dict")
                except Exception as exc:  # noqa: BLE001 - a failed step is reported, the others still run
                    failed = True
                    log.warning("session %s: step %s failed: %r", rt.id, name, exc)
                    await self._emit(rt, f"{name}_failed", {"step": name, "error": f"{type(exc).__name__}: {exc}"})
                    continue
                items = result.get("items") if name == "tasks" else None
                self.store.put_result(rt.id, name, result, task_items=items if isinstance(items, list) else None)
                if name == "refinement":
                    refined = result
                await self._emit(rt, f"{name}_ready", {"step": name, "result": result})
            if "post_transcription_reveal" not in done:
                transcript = (refined or {}).get("text") if refined else " ".join(f["text"] for f in finals)
                await self._emit(rt, "post_transcription_reveal", {"transcript": transcript or ""})
            state = FAILED if failed else COMPLETED
            last = None
            if "pipeline-event-missing" not in self.defects:  # defect pipeline-event-missing
                last = ("dashboard_refresh", {"state": state})
            await self._finish(rt, state, last)
        except asyncio.CancelledError:
            raise  # server shutdown or session deleted: resumed after restart, or gone
        except Exception:  # noqa: BLE001 - the runner itself broke: the session fails, the server lives
            log.exception("session %s: pipeline runner failed", rt.id)
            await self._finish(rt, FAILED, ("dashboard_refresh", {"state": FAILED}))
        finally:
            self.tracker.waiting(rt.id, "pipeline", False)

    def _input(self, input_type: Any, finals: list[dict[str, Any]], audio_ms: int,
               refined: dict[str, Any] | None) -> Any:
        if "zero-segment-crash" in self.defects:
            # defect zero-segment-crash: the speech span is read off the first and last segment
            speech_ms = finals[-1]["end_ms"] - finals[0]["start_ms"]
            audio_ms = max(audio_ms, speech_ms)
        return input_type(finals=finals, audio_ms=audio_ms, refined=refined)

    async def _hold(self, rt: SessionRuntime, step: str) -> None:
        """Test hook: stop at the start of metadata.hold_step until POST /debug/release/{id}."""
        if self.test_hooks and rt.metadata.get("hold_step") == step and not rt.release.is_set():
            self.tracker.stage(rt.id, "held", step=step)
            self.tracker.waiting(rt.id, "pipeline", True)
            await rt.release.wait()
            self.tracker.stage(rt.id, "released", step=step)

    async def _emit(self, rt: SessionRuntime, name: str, data: dict[str, Any]) -> None:
        at = time.time()
        if not rt.deleted:
            self.store.add_event(rt.id, name, at, data)
        self.tracker.stage(rt.id, name)
        await self.manager.send_event(rt, {"type": "event", "name": name, "at": iso(at), "data": data})

    async def _finish(self, rt: SessionRuntime, state: str, last: tuple[str, dict[str, Any]] | None) -> None:
        at = time.time()
        if not self.manager.transition_stored(rt, state, (last[0], at, last[1]) if last else None):
            return
        if last is not None:
            self.tracker.stage(rt.id, last[0])
            await self.manager.send_event(rt, {"type": "event", "name": last[0], "at": iso(at), "data": last[1]})
        await self.manager.pipeline_finished(rt, state)

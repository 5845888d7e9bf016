"""The HTTP API of PROTOCOL.md: sessions, health, stats, metrics, debug.

Every call here needs ``Authorization: Bearer <API key>``; a session token also opens that one
session's ``GET``. Errors are JSON: ``{"error": code, "message": ..., "field": ...}``.
"""

from __future__ import annotations

import json
import time
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from .pipeline.runner import RESULT_KEYS, STEP_NAMES
from .session_runtime import SessionRuntime
from .sessions import SessionError
from .server_parts import ServerState
from .stream import bearer
from .timefmt import iso


def error_response(exc: SessionError) -> JSONResponse:
    body: dict[str, Any] = {"error": exc.code, "message": exc.message}
    if exc.field:
        body["field"] = exc.field
    headers = {}
    if exc.status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse(body, status_code=exc.status, headers=headers)


def unauthorized() -> SessionError:
    return SessionError(401, "unauthorized", "missing or wrong credentials: send Authorization: Bearer <API key>")


def not_found(session_id: str) -> SessionError:
    return SessionError(404, "not_found", f"unknown session {session_id!r}")


def stream_url(request: Request, session_id: str) -> str:
    scheme = "wss" if request.url.scheme == "https" else "ws"
    return f"{scheme}://{request.url.netloc}/v1/stream?session_id={session_id}"


def created_body(request: Request, rt: SessionRuntime, token: str) -> dict[str, Any]:
    return {"session_id": rt.id, "token": token, "state": rt.state, "stream_url": stream_url(request, rt.id),
            "created_at": iso(rt.created_at)}


async def read_json(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        return {}  # no body: every field takes its default
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise SessionError(400, "bad_request", f"request body is not valid JSON: {exc}", "body") from exc


async def create_and_answer(state: ServerState, request: Request) -> JSONResponse:
    """Create a session from the request body: 201, or the error (503 with Retry-After)."""
    body = await read_json(request)
    try:
        rt, token = await state.manager.create(body)
    except SessionError as exc:
        if exc.status == 503:
            response = error_response(exc)
            response.headers["Retry-After"] = str(state.config.retry_after_s)
            return response
        raise
    return JSONResponse(created_body(request, rt, token), status_code=201)


def build_router(state: ServerState) -> APIRouter:
    router = APIRouter()
    manager = state.manager
    store = state.store
    config = state.config

    def require_key(request: Request) -> None:
        if not manager.authorized(None, bearer(request.headers.get("authorization"))):
            raise unauthorized()

    def session_for(request: Request, session_id: str, *, token_ok: bool) -> SessionRuntime:
        credential = bearer(request.headers.get("authorization"))
        if token_ok and credential is None:
            credential = request.query_params.get("access_token")
        rt = manager.get(session_id)
        if not manager.authorized(rt if token_ok else None, credential):
            raise unauthorized()
        if rt is None or rt.deleted:
            raise not_found(session_id)
        return rt

    @router.post("/v1/sessions", status_code=201)
    async def create_session(request: Request) -> JSONResponse:
        require_key(request)
        return await create_and_answer(state, request)

    @router.get("/v1/sessions/{session_id}")
    async def get_session(session_id: str, request: Request) -> dict[str, Any]:
        rt = session_for(request, session_id, token_ok=True)
        return session_body(state, rt)

    @router.post("/v1/sessions/{session_id}/finalize", status_code=202)
    async def finalize(session_id: str, request: Request) -> JSONResponse:
        rt = session_for(request, session_id, token_ok=False)
        new_state = await manager.finalize(rt, "http")
        return JSONResponse({"session_id": rt.id, "state": new_state}, status_code=202)

    @router.delete("/v1/sessions/{session_id}", status_code=204)
    async def delete(session_id: str, request: Request) -> Response:
        rt = session_for(request, session_id, token_ok=False)
        await manager.delete(rt)
        return Response(status_code=204)

    @router.get("/health")
    async def health(request: Request) -> dict[str, Any]:
        require_key(request)
        return state.health()

    @router.get("/v1/stats")
    async def stats(request: Request) -> dict[str, Any]:
        require_key(request)
        return state.stats_body()

    @router.get("/metrics")
    async def metrics(request: Request) -> Response:
        require_key(request)
        return Response(generate_latest(state.stats.registry), media_type=CONTENT_TYPE_LATEST)

    @router.get("/debug/transactions")
    async def transactions(request: Request, status: str | None = None) -> dict[str, Any]:
        require_key(request)
        if status is not None and status not in ("active", "stalled", "ended"):
            raise SessionError(400, "bad_request", f"status must be active, stalled or ended; got {status!r}",
                               "status")
        return {"stall_after_s": config.stall_after_s, "transactions": state.tracker.list(status)}

    @router.get("/debug/dump")
    async def dump(request: Request) -> dict[str, Any]:
        require_key(request)
        return {
            "config": {k: v for k, v in vars(config).items() if k not in ("api_key", "defects")},
            "defects": config.defects.sorted(),
            "health": state.health(),
            "stats": state.stats_body(),
            "sessions": [runtime_summary(rt) for rt in manager.runtimes.values()],
            "transactions": state.tracker.list(),
        }

    @router.get("/debug/connections")
    async def connections(request: Request, tag: str | None = None, session: str | None = None,
                          protocol: str | None = None) -> dict[str, Any]:
        """What each vendor connection did (wire/records.py): the vendor's side of a relay."""
        require_key(request)
        records = state.connections.list(tag=tag, session=session, protocol=protocol)
        return {"clock": "monotonic_ns", "now_ns": time.monotonic_ns(), "now_wall": time.time(),
                "connections": [r.to_json() for r in records]}

    @router.post("/debug/release/{session_id}")
    async def release(session_id: str, request: Request) -> dict[str, Any]:
        require_key(request)
        if not config.test_hooks:
            raise SessionError(404, "not_found", "test hooks are off: start the server with --test-hooks")
        rt = manager.get(session_id)
        if rt is None:
            raise not_found(session_id)
        rt.release.set()
        return {"session_id": rt.id, "released": True, "state": rt.state}

    return router


def runtime_summary(rt: SessionRuntime) -> dict[str, Any]:
    return {"session_id": rt.id, "state": rt.state, "engine": rt.engine_name, "received_offset": rt.received_offset,
            "durable_offset": rt.durable_offset, "next_segment_id": rt.next_segment_id, "engines": len(rt.engines),
            "pending_bytes": sum(len(c.data) for c in rt.pending), "streaming": rt.stream is not None}


def session_body(state: ServerState, rt: SessionRuntime) -> dict[str, Any]:
    store = state.store
    row = store.get_session(rt.id) or {}
    finals = store.finals(rt.id)
    events = store.events(rt.id)
    stored = store.results(rt.id)
    results: dict[str, Any] = {key: stored.get(step) for step, key in RESULT_KEYS.items()}
    if results["tasks"] is not None:
        # the action items as stored rows: what a task tracker downstream would hold
        results["tasks"] = {**results["tasks"], "items": store.task_items(rt.id)}
    pipeline = {step: "pending" for step in STEP_NAMES}
    for event in events:
        step, _, outcome = event["name"].rpartition("_")
        if step in pipeline:
            pipeline[step] = {"started": "running", "ready": "ready", "failed": "failed"}.get(outcome, pipeline[step])
    live = rt.id in state.manager.runtimes
    return {
        "session_id": rt.id,
        "state": rt.state,
        "engine": rt.engine_name,
        "created_at": iso(rt.created_at),
        "metadata": rt.metadata,
        "received_offset": rt.received_offset if live else row.get("received_offset", 0),
        "durable_offset": max(rt.durable_offset, row.get("durable_offset", 0)),
        "finals": finals,
        "transcript": " ".join(f["text"] for f in finals),
        "results": results,
        "pipeline": pipeline,
        "events": [e["name"] for e in events],
        "event_times": [iso(e["at"]) for e in events],
    }

"""Shared pieces of the conformance scenarios: talking to the target, scripted audio, fixtures.

The scripted engine (a test double, named as one) is used wherever exactness matters more than
speech recognition: word i covers stream bytes [i*W, (i+1)*W), so a byte lost or taken twice shows
up as a word lost or doubled. PocketSphinx is used where accuracy, latency or cadence is the point.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from harness.checks.integrity import expected_scripted_words
from harness.checks.verdict import Status, Verdict
from harness.drivers.asyncio_driver import AsyncSessionClient, AsyncStream, create_session, open_stream
from harness.drivers.session import SessionOutcome, SessionPlan
from harness.history import History
from harness.protocols import SessionInfo, SessionParams, StreamTarget, get_codec
from harness.protocols.events import Ack, Closed, Event, PipelineEvent, Ready

SCRIPT = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima"
WORD_MS = 300
WORD_BYTES = WORD_MS * 32  # 9,600 bytes of 16 kHz s16le audio per scripted word
# flite speech through PocketSphinx's generic model; a transcript heard twice is WER 1 or more
MAX_WER = 0.5
PIPELINE_TIMEOUT_S = 10.0  # the pipeline takes milliseconds here; a stuck one should not stall the suite


def stream_target(target: Any) -> StreamTarget:
    """HTTP at the target's URL; the stream there too, or at ``target.stream_url`` (Wyoming's TCP)."""
    return StreamTarget(http_url=target.http_url, api_key=target.api_key,
                        stream_base_url=getattr(target, "stream_url", None))


def scripted_params(script: str = SCRIPT, **metadata: Any) -> SessionParams:
    return SessionParams(engine="scripted", script=script, metadata=metadata)


def scripted_pcm(words: int) -> bytes:
    """Audio for ``words`` scripted words. The scripted engine reads byte counts, not sound, so a
    low-level ramp (never all zero, so a dropped chunk is not invisible in a dump) is enough."""
    pattern = bytes((i % 7) * 2 for i in range(64))
    total = words * WORD_BYTES
    return (pattern * (total // len(pattern) + 1))[:total]


def expected_words(words: int, script: str = SCRIPT) -> list[str]:
    return expected_scripted_words(script, words * WORD_BYTES, WORD_MS)


def fixture_meta(fixture: Any) -> dict[str, Any]:
    """What the checks need to know about an audio fixture, for ``history.meta``."""
    meta: dict[str, Any] = {"fixture_id": fixture.id, "expected_text": fixture.text}
    if fixture.speech_onset_s is not None:
        meta["speech_onset_ms"] = round(fixture.speech_onset_s * 1000)
    if fixture.speech_end_s is not None:
        meta["speech_end_ms"] = round(fixture.speech_end_s * 1000)
    return meta


def no_audio_plan() -> SessionPlan:
    """A session that sends no audio and ends the stream the protocol's way."""
    return SessionPlan(pcm=b"", params=SessionParams(engine="pocketsphinx"), pace=0, finalize="stream")


async def run_session(target: Any, plan: SessionPlan, history: History, protocol: str = "reference") -> SessionOutcome:
    """One whole session through the asyncio driver (create, stream, finalize, GET)."""
    client = AsyncSessionClient(get_codec(protocol), stream_target(target), plan, history)
    return await client.run()


async def http(target: Any, method: str, path: str, *, history: History | None = None, json: Any = None,
               headers: dict[str, str] | None = None, client: httpx.AsyncClient | None = None,
               timeout_s: float = 10.0) -> httpx.Response:
    """One HTTP call to the target with its API key (or ``headers``), recorded in ``history``."""
    own = client is None
    client = client or httpx.AsyncClient(trust_env=False)
    start = time.monotonic()
    try:
        resp = await client.request(method, target.http_url + path, json=json, timeout=timeout_s,
                                    headers=target.auth_headers() if headers is None else headers)
    except httpx.HTTPError as exc:
        if history is not None:
            history.add("http", method=method, path=path, status=None,
                        latency_ms=(time.monotonic() - start) * 1000, error=f"{type(exc).__name__}: {exc}")
        raise
    finally:
        if own:
            await client.aclose()
    if history is not None:
        history.add("http", method=method, path=path, status=resp.status_code,
                    latency_ms=round((time.monotonic() - start) * 1000, 3), error=None)
    return resp


async def get_state(target: Any, session_id: str, history: History | None = None) -> dict[str, Any]:
    resp = await http(target, "GET", f"/v1/sessions/{session_id}", history=history)
    resp.raise_for_status()
    return resp.json()


async def wait_state(target: Any, session_id: str, states: tuple[str, ...] = ("completed", "failed"),
                     timeout_s: float = PIPELINE_TIMEOUT_S) -> dict[str, Any]:
    """Poll the session until it reaches one of ``states`` (bounded); returns the last body seen."""
    deadline = time.monotonic() + timeout_s
    body = await get_state(target, session_id)
    while body.get("state") not in states and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        body = await get_state(target, session_id)
    return body


def _every_run_revealed(body: dict[str, Any]) -> bool:
    events = body.get("events") or []
    runs = events.count("session_finalized")
    return runs >= 1 and events.count("post_transcription_reveal") >= runs


async def wait_pipeline_runs(target: Any, session_id: str, timeout_s: float = PIPELINE_TIMEOUT_S) -> dict[str, Any]:
    """Poll (bounded) until the session has ended and every pipeline run that started has reached
    its reveal; one run on a healthy server, more where finalize is not idempotent, so a check
    reads the doubled events once they are all there instead of after a guessed sleep."""
    body = await wait_state(target, session_id, timeout_s=timeout_s)
    deadline = time.monotonic() + timeout_s
    while not _every_run_revealed(body) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        body = await get_state(target, session_id)
    return body


async def new_session(target: Any, history: History, params: SessionParams | None = None) -> SessionInfo:
    """POST /v1/sessions through the reference codec (recorded); sets ``history.session_id``."""
    return await create_session(get_codec("reference"), stream_target(target), params or scripted_params(),
                                history=history)


async def connect(target: Any, session: SessionInfo, history: History, **kwargs: Any) -> AsyncStream:
    return await open_stream(get_codec("reference"), stream_target(target), session, history=history, **kwargs)


async def expect_ready(stream: AsyncStream, timeout: float = 5.0) -> Ready:
    """The ready message; ScenarioTimeout "no ready within T s" when it does not come."""
    events = await stream.recv_until(lambda e: isinstance(e, (Ready, Closed)), timeout=timeout,
                                     symptom=lambda seen: "no ready")
    if not isinstance(events[-1], Ready):
        raise AssertionError(f"expected ready, got {[e.type for e in events]} (close: {events[-1]})")
    return events[-1]


def acked_through(events: list[Event]) -> int:
    """The highest ``received_offset`` acked among ``events`` (0 if none)."""
    return max((e.received_offset for e in events if isinstance(e, Ack)), default=0)


async def wait_acked(stream: AsyncStream, offset: int, timeout: float = 10.0, sent: int | None = None) -> list[Event]:
    """Read until an ack covers ``offset`` (or the stream closes); ScenarioTimeout "no ack past
    offset N of M" (N: the highest acked, M: ``offset``, or ``sent`` when given) otherwise."""
    return await stream.recv_until(
        lambda e: (isinstance(e, Ack) and e.received_offset >= offset) or isinstance(e, Closed),
        timeout=timeout,
        symptom=lambda seen: f"no ack past offset {acked_through(seen)} of {sent if sent is not None else offset}",
    )


async def drain_to_close(stream: AsyncStream, timeout: float = PIPELINE_TIMEOUT_S,
                         history: History | None = None) -> list[Event]:
    """Every event until the server closes the stream; bounded by ``timeout``. A stream still open
    then is noted in ``history`` (the checks that follow say what it means for them)."""
    try:
        return await stream.recv_until(lambda e: isinstance(e, Closed), timeout=timeout,
                                       symptom=lambda seen: "no close from the server")
    except TimeoutError as exc:
        if history is not None:
            history.add("note", text=str(exc))
        return []


async def wait_pipeline_event(stream: AsyncStream, timeout: float = PIPELINE_TIMEOUT_S) -> list[Event]:
    """Read until the first pipeline event after finalize; ScenarioTimeout "no pipeline event after
    finalize within T s" otherwise."""
    return await stream.recv_until(lambda e: isinstance(e, PipelineEvent), timeout=timeout,
                                   symptom=lambda seen: "no pipeline event after finalize")


async def send_all(stream: AsyncStream, pcm: bytes, chunk: int = 3200, start: int = 0) -> None:
    """Send ``pcm`` from ``start`` as fast as the socket takes it (pace is not the point)."""
    for offset in range(start, len(pcm), chunk):
        await stream.send_audio(offset, pcm[offset:offset + chunk])


def driver_verdict(outcome: SessionOutcome) -> Verdict:
    """The client's own account of the session: it completed, or why it gave up."""
    who = f"session {outcome.session_id or '<none>'} ({outcome.history.meta.get('scenario', '')})"
    if outcome.error:
        return Verdict("session.client", Status.FAIL, f"{who}: the client gave up: {outcome.error}",
                       evidence={"close_code": outcome.close_code, "reconnects": outcome.reconnects})
    if not outcome.completed:
        return Verdict("session.client", Status.FAIL,
                       f"{who}: did not complete (last close {outcome.close_code})", evidence={"close_code": outcome.close_code})
    return Verdict("session.client", Status.PASS, f"{who}: completed with {outcome.reconnects} reconnect(s)")


class ServerTarget:
    """A dedicated ReferenceServer, shaped like the plugin's Target for these helpers."""

    embedded = True

    def __init__(self, server: Any):
        self.server = server
        self.http_url, self.api_key = server.url, server.api_key

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}


def unnamed_session(check: str, protocol: str) -> Verdict:
    """The stream never said which session it was (Deepgram: no ``request_id``), so the session's
    record cannot be read back: that check fails rather than being skipped."""
    return Verdict(check, Status.FAIL, f"the {protocol} stream never named its session (no session id or "
                   "request_id), so the session's record could not be checked")

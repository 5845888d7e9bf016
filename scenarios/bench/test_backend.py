"""The backend's own latencies, measured one thing at a time with the scripted engine (so the
figures are the server's machinery, not speech recognition): session creation, connect to
``ready``, a word's audio in -> its partial, finalize -> the last final, and a partial for every
word of a segment.

Catches ``stream-gap``: after the first final, partials stop until the segment ends, so words six
to nine of the per-word benchmark get no partial at all.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from conftest import measured

from harness.checks.verdict import Status, Verdict
from harness.drivers.sync_driver import SyncStream, create_session, http_request, open_stream
from harness.protocols.base import SessionInfo, SessionParams, StreamTarget
from harness.protocols.events import Ack, Closed, Final, Partial, Ready
from harness.protocols.registry import get_codec

SCRIPT = "we need to send the report to the client by friday please"
pytestmark = pytest.mark.needs("session_api", "v1_frames", "scripted_engine", "delete")

WORD_BYTES = 9_600  # 300 ms at 16 kHz s16le: one scripted word
PARTIAL_WAIT_S = 1.5


@pytest.fixture
def backend(target, harness_options) -> Iterator[tuple[StreamTarget, httpx.Client, list[SessionInfo]]]:
    """(target, HTTP client, sessions to delete afterwards). The benchmarks speak PROTOCOL.md v1
    themselves (module marker ``needs``)."""
    tgt = StreamTarget(target.http_url, target.api_key)
    created: list[SessionInfo] = []
    with httpx.Client(trust_env=False) as http:
        yield tgt, http, created
        codec = get_codec("reference")
        for s in created:
            try:
                http_request(tgt, codec.delete_session_request(tgt, s), http=http, allow_remote=harness_options.allow_remote)
            except httpx.HTTPError:
                pass


def _session(tgt: StreamTarget, http: httpx.Client, created: list[SessionInfo], allow_remote: bool) -> SessionInfo:
    s = create_session(get_codec("reference"), tgt, SessionParams(engine="scripted", script=SCRIPT), http=http,
                       allow_remote=allow_remote)
    created.append(s)
    return s


def _ready_stream(tgt: StreamTarget, session: SessionInfo, allow_remote: bool) -> SyncStream:
    stream = open_stream(get_codec("reference"), tgt, session, allow_remote=allow_remote)
    stream.recv_until(lambda e: isinstance(e, Ready), timeout=10)
    return stream


def _word_audio(i: int) -> bytes:
    """Exactly one word of audio (the scripted engine counts bytes, not sound)."""
    return (bytes([(i * 7 + k) % 251 for k in range(256)]) * (WORD_BYTES // 256 + 1))[:WORD_BYTES]


def _hyp_ending(events, end_ms: int) -> bool:
    return any(isinstance(e, (Partial, Final)) and e.end_ms >= end_ms and e.text.strip() for e in events)


def test_session_create(scenario, benchmark, backend, harness_options):
    tgt, http, created = backend
    benchmark.pedantic(_session, args=(tgt, http, created, harness_options.allow_remote), rounds=30, warmup_rounds=2)
    verdict = measured(scenario, benchmark, "bench.session_create")
    data = getattr(getattr(benchmark, "stats", None), "stats", None)
    if data is not None and data.data:
        # These are real POST /v1/sessions round trips: the session_create_ms SLO may judge them.
        verdict.metrics["session_create_ms"] = [round(x * 1000, 3) for x in data.data]
    scenario.verify()


def test_connect_to_ready(scenario, benchmark, backend, harness_options):
    tgt, http, created = backend
    streams: list[SyncStream] = []

    def setup():
        return (_session(tgt, http, created, harness_options.allow_remote),), {}

    def connect(session: SessionInfo) -> None:
        streams.append(_ready_stream(tgt, session, harness_options.allow_remote))

    try:
        benchmark.pedantic(connect, setup=setup, rounds=20)
    finally:
        for s in streams:
            s.close(1000)
    measured(scenario, benchmark, "bench.connect_to_ready")
    scenario.verify()


def test_word_to_first_partial(scenario, benchmark, backend, harness_options):
    """One word's audio sent in one frame -> the partial that carries it."""
    tgt, http, created = backend
    streams: list[SyncStream] = []
    missing: list[str] = []

    def setup():
        stream = _ready_stream(tgt, _session(tgt, http, created, harness_options.allow_remote), harness_options.allow_remote)
        streams.append(stream)
        return (stream,), {}

    def first_partial(stream: SyncStream) -> None:
        stream.send_audio(0, _word_audio(0))
        try:
            stream.recv_until(lambda e: _hyp_ending([e], 300), timeout=PARTIAL_WAIT_S)
        except TimeoutError:
            missing.append(f"no partial within {PARTIAL_WAIT_S:g} s of the first word's audio")

    try:
        benchmark.pedantic(first_partial, setup=setup, rounds=15)
    finally:
        for s in streams:
            s.close(1000)
    measured(scenario, benchmark, "bench.word_to_first_partial")
    scenario.check(Verdict("bench.first_partial_arrives", Status.FAIL if missing else Status.PASS,
                           "; ".join(missing[:3]) or "every round got its partial"))
    scenario.verify()


def test_finalize_to_last_final(scenario, benchmark, backend, harness_options):
    """Seven words in (one final of five emitted, two words open), then finalize -> the final of
    the open segment."""
    tgt, http, created = backend
    streams: list[SyncStream] = []

    def setup():
        stream = _ready_stream(tgt, _session(tgt, http, created, harness_options.allow_remote), harness_options.allow_remote)
        streams.append(stream)
        for i in range(7):
            stream.send_audio(i * WORD_BYTES, _word_audio(i))
        stream.recv_until(lambda e: isinstance(e, Ack) and e.received_offset >= 7 * WORD_BYTES, timeout=10)
        return (stream,), {}

    def finalize(stream: SyncStream) -> None:
        stream.send_control("finalize")
        stream.recv_until(lambda e: isinstance(e, Final) and e.segment_id == 1, timeout=10)

    try:
        benchmark.pedantic(finalize, setup=setup, rounds=10)
    finally:
        for s in streams:
            s.drain(2.0)  # the pipeline's events and the close 1000
            if not s.closed:
                s.close(1000)
    measured(scenario, benchmark, "bench.finalize_to_last_final")
    scenario.verify()


@pytest.mark.catches("stream-gap")
def test_partial_for_every_word(scenario, benchmark, backend, harness_options):
    """Twelve words, one per round, in one session: each word's audio -> the hypothesis that ends
    with it. A word with no partial (nor final) within 1.5 s is a gap a user would see."""
    tgt, http, created = backend
    stream = _ready_stream(tgt, _session(tgt, http, created, harness_options.allow_remote), harness_options.allow_remote)
    state = {"word": 0}
    missing: list[int] = []

    def next_word() -> None:
        i = state["word"]
        state["word"] += 1
        stream.send_audio(i * WORD_BYTES, _word_audio(i))
        try:
            stream.recv_until(lambda e: _hyp_ending([e], (i + 1) * 300), timeout=PARTIAL_WAIT_S)
        except TimeoutError:
            missing.append(i)

    try:
        benchmark.pedantic(next_word, rounds=12)
    finally:
        stream.close(1000)
    measured(scenario, benchmark, "bench.partial_per_word")
    if missing:
        verdict = Verdict("bench.partial_per_word", Status.FAIL,
                          f"no partial within {PARTIAL_WAIT_S:g} s for word(s) {missing} of 12 (0-based): partials "
                          f"stopped mid-segment, a gap the user sees as frozen text", {}, {"missing_words": missing})
    else:
        verdict = Verdict("bench.partial_per_word", Status.PASS, "every one of 12 words got its partial")
    scenario.check(verdict)
    scenario.verify()

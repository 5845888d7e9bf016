"""Conformance checks: what one stream and one session must show, and how bad input is answered.

* ``stream_lifecycle``: ready received, every byte sent acknowledged, partials and finals with
  text, and a close 1000 at the end (protocols without ready/acks skip those parts);
* ``session_state``: a ``GET /v1/sessions/{id}`` body after finalize: completed, every pipeline
  event once and in order, every step ready, every result present;
* ``error_answer``: a deliberately bad input got one of its documented error or close codes;
* ``create_percentile``: a percentile of session creation times within a limit;
* ``partial_coverage``: partials covering the speech in steps of at most a limit (audio time).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from harness.checks import lifecycle
from harness.checks._common import ns_to_ms, sent_through, session_label, short, verdict
from harness.checks.latency import session_create_samples
from harness.checks.verdict import Status, Verdict
from harness.history import History
from harness.protocols.events import Ack, Closed, Error, Event, Final, Partial


def stream_lifecycle(history: History, expect_speech: bool = True, expect_close: int | None = 1000, *,
                     ready: bool = True, acks: bool = True) -> Verdict:
    """The stream's happy path as a client sees it, with the first thing that went wrong named.
    ``ready`` / ``acks``: whether the protocol promises a ready message and acks of every byte
    (the ``ready`` and ``offsets`` capabilities; a scenario passes what its target has)."""
    name, who = "lifecycle.stream", session_label(history)
    problems: list[str] = []
    readies = history.events("ready")
    sent = sent_through(history)
    acked = max((e.received_offset for _, e in history.events("ack") if isinstance(e, Ack)), default=0)
    if ready and not readies:
        problems.append("no ready message arrived")
    if acks and sent and acked < sent:
        problems.append(f"audio acknowledged only through byte {acked} of {sent} sent")
    partials = [e for _, e in history.events("partial") if isinstance(e, Partial) and e.text.strip()]
    finals = [e for _, e in history.events("final") if isinstance(e, Final) and e.text.strip()]
    if expect_speech and not partials:
        problems.append("no partial with text arrived")
    if expect_speech and not finals:
        problems.append("no final with text arrived")
    closes = [e for _, e in history.events("closed") if isinstance(e, Closed)]
    if expect_close is not None:
        if not closes:
            problems.append(f"the stream never closed (expected {expect_close})")
        elif closes[-1].code != expect_close:
            problems.append(f"the stream closed {closes[-1].code} {closes[-1].reason!r}, expected {expect_close}")
    errors = [f"{e.code}: {e.message}" for _, e in history.events("error") if isinstance(e, Error)]
    if errors:
        problems.append("error message(s) on a clean stream: " + short(errors, 2))
    evidence = {"ready": len(readies), "sent_bytes": sent, "acked_bytes": acked, "partials": len(partials),
                "finals": len(finals), "close": closes[-1].code if closes else None}
    if problems:
        return verdict(name, Status.FAIL, f"{who}: " + short(problems, 4), {}, evidence)
    return verdict(name, Status.PASS, f"{who}: ready, {acked} bytes acked, {len(partials)} partials, "
                   f"{len(finals)} finals, closed {closes[-1].code if closes else '-'}", {}, evidence)


def session_state(body: dict[str, Any], who: str | None = None, allow_failed: bool = False) -> Verdict:
    """A finalized session's record: completed, its pipeline complete, its results there."""
    name = "lifecycle.session_state"
    who = who or (f"session {body['session_id']}" if body.get("session_id") else "session")
    problems: list[str] = []
    if body.get("state") != "completed":
        problems.append(f"state is {body.get('state')!r}, not 'completed'")
    names = lifecycle.body_events(body)
    sequence = lifecycle.sequence_problems(names, allow_failed)
    missing_events = [p.removesuffix(" missing") for p in sequence if p.endswith(" missing")]
    if missing_events:
        problems.append(f"pipeline event{'s' if len(missing_events) > 1 else ''} "
                        f"{', '.join(missing_events)} never happened")
    problems += [p for p in sequence if not p.endswith(" missing")]
    pipeline = lifecycle.body_pipeline(body)
    not_ready = [f"{step} is {pipeline.get(step)!r}" for step in lifecycle.PIPELINE_STEPS
                 if pipeline.get(step) != lifecycle.STEP_OK and not (allow_failed and pipeline.get(step) == "failed")]
    if not_ready:
        problems.append("step " + ", ".join(not_ready))
    results = body.get("results") or {}
    missing = [k for k in lifecycle.RESULT_KEYS if results.get(k) is None]
    if missing:
        problems.append("no " + ", ".join(missing) + " in results")
    evidence = {"state": body.get("state"), "events": names, "pipeline": pipeline}
    if problems:
        return verdict(name, Status.FAIL, f"{who}: " + short(problems, 4), {}, evidence)
    return verdict(name, Status.PASS, f"{who}: completed, {len(names)} pipeline events, every step ready", {}, evidence)


def error_answer(
    case: str,
    events: Iterable[Event],
    expect_errors: Sequence[str] = (),
    expect_closes: Sequence[int] = (),
    who: str = "",
) -> Verdict:
    """A bad input (``case``) was answered with one of ``expect_errors`` or ``expect_closes``.

    ``events``: what the client received after sending it. Passing needs a matching answer; any
    other error or close is named in the failure, as is silence.
    """
    name = f"bad_input.{case.replace(' ', '_')}"
    seen = list(events)
    errors = [e for e in seen if isinstance(e, Error)]
    closes = [e for e in seen if isinstance(e, Closed)]
    match = [f"error {e.code}" for e in errors if e.code in expect_errors]
    match += [f"close {e.code}" for e in closes if e.code in expect_closes]
    wanted = [f"error {c}" for c in expect_errors] + [f"close {c}" for c in expect_closes]
    got = [f"error {e.code} ({e.message[:60]})" for e in errors] + [f"close {e.code} {e.reason!r}" for e in closes]
    prefix = f"{who}: " if who else ""
    evidence = {"expected": wanted, "received": [type(e).__name__ for e in seen][:20], "answers": got}
    if match:
        return verdict(name, Status.PASS, f"{prefix}{case}: answered with {match[0]}", {}, evidence)
    answer = "; ".join(got) if got else f"nothing ({len(seen)} other message(s))"
    return verdict(name, Status.FAIL, f"{prefix}{case}: expected {' or '.join(wanted)}, got {answer}", {}, evidence)


def http_answer(case: str, status: int | None, expect: Sequence[int], body: Any = None) -> Verdict:
    """An HTTP call with bad input was answered with one of the ``expect`` statuses."""
    name = f"bad_input.{case.replace(' ', '_')}"
    evidence = {"status": status, "expected": list(expect), "body": str(body)[:300]}
    if status in expect:
        return verdict(name, Status.PASS, f"{case}: HTTP {status}", {}, evidence)
    got = "no answer" if status is None else f"HTTP {status}"
    return verdict(name, Status.FAIL, f"{case}: expected HTTP {' or '.join(map(str, expect))}, got {got}", {}, evidence)


def _nearest_rank(values: list[float], q: float) -> float:
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def create_percentile(history: History, q: float = 95, limit_ms: float = 2000, min_samples: int = 5) -> Verdict:
    """The ``q``-th percentile (nearest rank) of session creation times is within ``limit_ms``."""
    name = f"latency.session_create_p{q:g}"
    who = session_label(history) if history.session_id else str(history.meta.get("scenario", "sessions"))
    samples = session_create_samples(history)
    values = [s.ms for s in samples]
    metrics = {"session_create_ms": values}
    if len(values) < min_samples:
        return verdict(name, Status.UNKNOWN, f"{who}: {len(values)} session creation(s) answered, need {min_samples}",
                       metrics)
    p = _nearest_rank(values, q)
    slow = sorted((s for s in samples if s.ms > limit_ms), key=lambda s: -s.ms)
    evidence = {"samples_ms": [round(v, 1) for v in values], "over_limit": [round(s.ms, 1) for s in slow]}
    if p > limit_ms:
        return verdict(name, Status.FAIL,
                       f"{who}: p{q:g} session creation {p:.0f} ms over {len(values)} sessions exceeds {limit_ms:.0f} ms "
                       f"({len(slow)} slow: {short([f'{s.ms:.0f} ms' for s in slow], 3)})", metrics, evidence)
    return verdict(name, Status.PASS, f"{who}: p{q:g} session creation {p:.0f} ms over {len(values)} sessions",
                   metrics, evidence)



def partial_coverage(history: History, max_gap_ms: float = 1000.0) -> Verdict:
    """No stretch of speech longer than ``max_gap_ms`` (audio time) without a hypothesis.

    Every partial and final says which audio it covers (``end_ms``). While speech flows, those
    ends must advance in steps of at most ``max_gap_ms``: from the first hypothesis to the end
    of the speech (``meta.speech_end_ms``, else the end of the audio sent), including the tail.
    Measured on the audio's clock, not the wall clock, so a server slowed down by a busy machine
    (hypotheses late and bunched) passes, while one that sends no partial for a stretch of speech
    (``stream-gap``) fails whatever the machine's load. The fixture must be continuous speech:
    a pause between utterances would count as a gap.
    """
    name, who = "latency.partial_coverage", session_label(history)
    hyps = [(t, e) for t, e in history.events() if isinstance(e, (Partial, Final)) and e.text.strip()]
    if not hyps:
        return verdict(name, Status.UNKNOWN, f"{who}: no partial or final with text arrived", {})
    end_ms = history.meta.get("speech_end_ms")
    speech_end = float(end_ms) if end_ms is not None else sent_through(history) / 32.0
    points = sorted({e.end_ms for _, e in hyps if e.end_ms <= speech_end})
    if not points:
        return verdict(name, Status.UNKNOWN, f"{who}: no hypothesis covers audio before the speech end ({speech_end:.0f} ms)", {})
    if points[-1] < speech_end:
        points.append(speech_end)  # the tail: speech after the last hypothesis counts too
    gaps = [(b - a, a, b) for a, b in zip(points, points[1:])]
    worst = max(gaps, key=lambda g: g[0], default=(0.0, points[0], points[0]))  # the first of equal gaps
    wall = [ns_to_ms(t1 - t0) for (t0, _), (t1, _) in zip(hyps, hyps[1:])]
    evidence = {"covered_ms": points[:200], "speech_end_ms": speech_end, "largest_audio_gap_ms": worst[0],
                "largest_wall_gap_ms": max(wall, default=0.0)}
    gap, a, b = worst
    if gap > max_gap_ms:
        tail = " (the rest of the speech)" if b == speech_end and speech_end not in {e.end_ms for _, e in hyps} else ""
        return verdict(name, Status.FAIL,
                       f"{who}: no partial for {gap:.0f} ms of speech (limit {max_gap_ms:.0f} ms), from audio "
                       f"{a:.0f} ms to {b:.0f} ms{tail}: the user saw a frozen line while the speaker went on",
                       {}, evidence)
    return verdict(name, Status.PASS, f"{who}: a hypothesis at least every {gap:.0f} ms of speech "
                   f"through {speech_end:.0f} ms", {}, evidence)


def wrong_key_refused(history: History) -> Verdict:
    """A wrong API key is refused: session creation answers 401/403 (a protocol with a session
    step), or the stream's handshake fails with 401/403, or the server closes the stream before it
    answers anything (no ready, ack, partial or final)."""
    name, who = "auth.wrong_key", session_label(history)
    creates = [r for r in history.of_kind("http") if r.data.get("method") == "POST"]
    if creates:
        status = creates[0].data.get("status")
        if status in (401, 403):
            return verdict(name, Status.PASS, f"{who}: session creation refused with HTTP {status}",
                           evidence={"status": status})
        return verdict(name, Status.FAIL, f"{who}: session creation with a wrong API key answered "
                       f"{'no answer' if status is None else f'HTTP {status}'}, not 401 or 403", evidence={"status": status})
    failed = history.of_kind("connect_failed")
    if failed and not history.of_kind("connected"):
        status = failed[0].data.get("status")
        if status in (401, 403):
            return verdict(name, Status.PASS, f"{who}: the handshake was refused with HTTP {status}",
                           evidence={"status": status})
        return verdict(name, Status.FAIL, f"{who}: the handshake failed, but not as a refusal of the key "
                       f"({failed[0].data.get('error')}; expected HTTP 401 or 403)", evidence={"status": status})
    answered = [e.type for _, e in history.events() if e.type in ("ready", "ack", "partial", "final")]
    closes = [e for _, e in history.events("closed") if isinstance(e, Closed)]
    if answered:
        return verdict(name, Status.FAIL, f"{who}: a wrong API key was served: the stream answered "
                       f"{short(sorted(set(answered)), 4)} before any close", evidence={"answered": answered})
    if not closes:
        return verdict(name, Status.FAIL, f"{who}: a stream with a wrong API key was accepted and left open")
    return verdict(name, Status.PASS, f"{who}: closed {closes[0].code} {closes[0].reason!r} before answering anything",
                   evidence={"close_code": closes[0].code})

"""Lifecycle checks: the finalize path and its pipeline events, as PROTOCOL.md orders them.

Each pipeline event arrives exactly once per session, in this order: ``session_finalized``; for
each step ``refinement``, ``analytics``, ``tasks``, ``summary``: ``<step>_started`` then
``<step>_ready`` or ``<step>_failed``; then ``post_transcription_reveal``, ``dashboard_refresh``;
then the stream closes 1000. Finalizing over HTTP or over the stream, once or N times at once,
with or without audio, must all end the same way.

Some checks read the ``GET /v1/sessions/{id}`` body (a dict, as decoded from JSON). It is read
tolerantly: ``events`` may be names or ``{"name": …}`` objects, ``pipeline`` maps a step to a
status string or to ``{"status": …}``, ``results.tasks`` may be ``{"items": […]}`` or a list.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from harness.checks import text as _text
from harness.checks._common import session_label, short, verdict
from harness.checks.latency import finalize_time
from harness.checks.verdict import Status, Verdict
from harness.history import History

PIPELINE_STEPS: tuple[str, ...] = ("refinement", "analytics", "tasks", "summary")
RESULT_KEYS: tuple[str, ...] = ("refined_transcript", "analytics", "tasks", "summary")
STEP_OK = "ready"


def protocol_order(outcomes: dict[str, str] | None = None) -> list[str]:
    """The full event sequence; ``outcomes`` maps a step to ``ready`` or ``failed`` (default ready)."""
    outcomes = outcomes or {}
    names = ["session_finalized"]
    for step in PIPELINE_STEPS:
        names += [f"{step}_started", f"{step}_{outcomes.get(step, STEP_OK)}"]
    return names + ["post_transcription_reveal", "dashboard_refresh"]


KNOWN_EVENTS = frozenset(protocol_order() + [f"{s}_failed" for s in PIPELINE_STEPS])


def sequence_problems(names: list[str], allow_failed: bool = False) -> list[str]:
    """What is wrong with a list of pipeline event names: missing, repeated, unknown, out of order."""
    problems: list[str] = []
    counts = Counter(names)
    outcomes = {s: ("failed" if f"{s}_failed" in counts and f"{s}_ready" not in counts else STEP_OK) for s in PIPELINE_STEPS}
    expected = protocol_order(outcomes)
    for name in expected:
        if counts[name] == 0:
            problems.append(f"{name} missing")
    for name, n in counts.items():
        if n > 1:
            problems.append(f"{name} sent {n} times")
        if name not in KNOWN_EVENTS:
            problems.append(f"unexpected event {name!r}")
    for step in PIPELINE_STEPS:
        if counts[f"{step}_ready"] and counts[f"{step}_failed"]:
            problems.append(f"{step} reported both ready and failed")
        elif counts[f"{step}_failed"] and not allow_failed:
            problems.append(f"{step}_failed")
    rank = {name: i for i, name in enumerate(expected)}
    firsts = [n for i, n in enumerate(names) if n in rank and names.index(n) == i]
    for a, b in zip(firsts, firsts[1:]):
        if rank[b] < rank[a]:
            problems.append(f"{a} came before {b}")
            break
    return problems


def pipeline_events(history: History, allow_failed: bool = False, expect_close: bool = True) -> Verdict:
    """The pipeline events received on the stream: exactly once, in order, then close 1000."""
    name, who = "lifecycle.pipeline_events", session_label(history)
    events = history.events("pipeline_event")
    names = [e.name for _, e in events]  # type: ignore[union-attr]
    t_f = finalize_time(history)
    if not names and t_f is None:
        return verdict(name, Status.UNKNOWN, f"{who}: the session was never finalized", {}, {"events": names})
    problems = sequence_problems(names, allow_failed)
    close = None
    if events:
        t_last = events[-1][0]
        close = next((e for t, e in history.events("closed") if t >= t_last), None)
    if expect_close:
        if close is None:
            problems.append("the stream did not close after the last pipeline event" if names else "no pipeline event arrived")
        elif close.code != 1000:  # type: ignore[union-attr]
            problems.append(f"the stream closed {close.code} {close.reason!r}, expected 1000")  # type: ignore[union-attr]
    evidence = {"events": names, "close": getattr(close, "code", None)}
    if problems:
        return verdict(name, Status.FAIL, f"{who}: pipeline events wrong: " + short(problems, 4), {}, evidence)
    return verdict(name, Status.PASS, f"{who}: {len(names)} pipeline events once each, in order, then close 1000", {}, evidence)


# --- reading a GET /v1/sessions/{id} body --------------------------------------------------
def body_events(body: dict[str, Any]) -> list[str]:
    return [e.get("name", "") if isinstance(e, dict) else str(e) for e in body.get("events") or []]


def body_pipeline(body: dict[str, Any]) -> dict[str, str]:
    out = {}
    for step, status in (body.get("pipeline") or {}).items():
        out[step] = str(status.get("status") if isinstance(status, dict) else status)
    return out


def body_tasks(body: dict[str, Any]) -> list[Any]:
    tasks = (body.get("results") or {}).get("tasks")
    if isinstance(tasks, dict):
        tasks = tasks.get("items", [])
    return list(tasks or [])


def body_refined_text(body: dict[str, Any]) -> str | None:
    refined = (body.get("results") or {}).get("refined_transcript")
    if isinstance(refined, dict):
        refined = refined.get("text")
    return refined if refined is None else str(refined)


def body_transcript(body: dict[str, Any]) -> str:
    return " ".join(str(f.get("text", "")) for f in body.get("finals") or [] if isinstance(f, dict)).strip()


def _body_label(body: dict[str, Any], fallback: str) -> str:
    return f"session {body['session_id']}" if body.get("session_id") else fallback


def _missing_results(body: dict[str, Any]) -> list[str]:
    results = body.get("results") or {}
    return [k for k in RESULT_KEYS if results.get(k) is None]


# --- checks on bodies -------------------------------------------------------------------------
def finalize_equivalence(http_body: dict[str, Any], stream_body: dict[str, Any], compare_transcripts: bool = True) -> Verdict:
    """Two sessions fed the same audio, one finalized over HTTP, one over the stream, end the same."""
    name = "lifecycle.finalize_equivalence"
    a, b = _body_label(http_body, "HTTP-finalized session"), _body_label(stream_body, "stream-finalized session")
    diffs: list[str] = []
    for label, body in ((a, http_body), (b, stream_body)):
        if body.get("state") != "completed":
            diffs.append(f"{label} is {body.get('state')!r}, not 'completed'")
        missing = _missing_results(body)
        if missing:
            diffs.append(f"{label} has no {', '.join(missing)}")
    if body_events(http_body) != body_events(stream_body):
        diffs.append(f"events differ: {a} {body_events(http_body)} vs {b} {body_events(stream_body)}")
    if body_pipeline(http_body) != body_pipeline(stream_body):
        diffs.append(f"pipeline differs: {a} {body_pipeline(http_body)} vs {b} {body_pipeline(stream_body)}")
    if compare_transcripts:
        ta, tb = _text.normalized(body_refined_text(http_body)), _text.normalized(body_refined_text(stream_body))
        if ta != tb:
            diffs.append(f"refined transcripts differ: {ta[:80]!r} vs {tb[:80]!r}")
    evidence = {
        "http": {"state": http_body.get("state"), "events": body_events(http_body), "pipeline": body_pipeline(http_body)},
        "stream": {"state": stream_body.get("state"), "events": body_events(stream_body), "pipeline": body_pipeline(stream_body)},
    }
    if diffs:
        return verdict(name, Status.FAIL, "HTTP and stream finalize are not equivalent: " + short(diffs, 3), {}, evidence)
    return verdict(name, Status.PASS, f"{a} (HTTP) and {b} (stream) finalized identically", {}, evidence)


def idempotency(
    body: dict[str, Any], history: History | None = None, reference_body: dict[str, Any] | None = None
) -> Verdict:
    """A session finalized N times (concurrently) ran its pipeline once: events and tasks once each.

    ``reference_body`` (optional): the same audio finalized once; its task count is then the
    expected one, so a transcript that legitimately repeats a task does not look doubled.
    """
    name = "lifecycle.idempotency"
    who = _body_label(body, session_label(history) if history else "session")
    problems = sequence_problems(body_events(body), allow_failed=True)
    tasks = body_tasks(body)
    if reference_body is not None:
        want = len(body_tasks(reference_body))
        if len(tasks) != want:
            problems.append(f"{len(tasks)} tasks, finalized once it has {want}")
    else:
        counts = Counter(repr(t) for t in tasks)
        doubled = [f"{k} x{n}" for k, n in counts.items() if n > 1]
        if doubled:
            problems.append("tasks repeated: " + short(doubled, 2))
    calls = []
    if history is not None:
        streamed = sequence_problems([e.name for _, e in history.events("pipeline_event")], allow_failed=True)  # type: ignore[union-attr]
        problems += [f"on the stream: {p}" for p in streamed if "sent" in p]
        for r in history.of_kind("http"):
            if str(r.data.get("path", "")).rstrip("/").endswith("/finalize"):
                calls.append(r.data.get("status"))
        bad = [s for s in calls if s is None or not 200 <= int(s) < 300]
        if bad:
            problems.append(f"{len(bad)} of {len(calls)} finalize calls answered {sorted(set(map(str, bad)))}")
    evidence = {"events": body_events(body), "tasks": tasks[:20], "finalize_statuses": calls}
    if problems:
        return verdict(name, Status.FAIL, f"{who}: finalize is not idempotent: " + short(problems, 3), {}, evidence)
    n = f" {len(calls)} finalize calls," if calls else ""
    return verdict(name, Status.PASS, f"{who}:{n} pipeline ran once", {}, evidence)


def zero_audio(body: dict[str, Any], history: History | None = None) -> Verdict:
    """A session finalized with no audio completes: empty transcript, every step reports ready."""
    name = "lifecycle.zero_audio"
    who = _body_label(body, session_label(history) if history else "session")
    problems: list[str] = []
    if body.get("state") != "completed":
        problems.append(f"state is {body.get('state')!r}, not 'completed'")
    if body_transcript(body) or (body.get("finals") or []):
        problems.append(f"{len(body.get('finals') or [])} final(s) with no audio: {body_transcript(body)[:60]!r}")
    missing = _missing_results(body)
    if missing:
        problems.append("no " + ", ".join(missing))
    refined = body_refined_text(body)
    if refined and refined.strip():
        problems.append(f"refined transcript is {refined[:60]!r}, expected empty")
    pipeline = body_pipeline(body)
    for step in PIPELINE_STEPS:
        if pipeline.get(step) != STEP_OK:
            problems.append(f"step {step} is {pipeline.get(step)!r}")
    problems += sequence_problems(body_events(body))
    if history is not None:
        if history.finals():
            problems.append(f"{len(history.finals())} final(s) received on the stream")
        v = pipeline_events(history)
        if v.status is Status.FAIL:
            problems.append("on the stream: " + v.message.split(": ", 2)[-1])
    evidence = {"state": body.get("state"), "pipeline": pipeline, "events": body_events(body)}
    if problems:
        return verdict(name, Status.FAIL, f"{who}: zero-audio finalize broken: " + short(problems, 4), {}, evidence)
    return verdict(name, Status.PASS, f"{who}: zero-audio session completed, every step ready", {}, evidence)


def no_audio_stream(history: History, documented_errors: frozenset[str] = frozenset()) -> Verdict:
    """A stream that carried no audio and was finalized, as any protocol does it: no final with
    words (there was nothing to hear) and no error from the backend but those its protocol
    documents as the answer to finalizing nothing (``documented_errors``)."""
    name = "lifecycle.no_audio_stream"
    who = session_label(history)
    problems: list[str] = []
    finals = history.finals()
    worded = [f for _, f in finals if f.text.strip()]
    if worded:
        problems.append(f"{len(worded)} final(s) with words and no audio sent: {worded[0].text[:60]!r}")
    errors = [e for _, e in history.events("error") if e.code not in documented_errors]  # type: ignore[union-attr]
    if errors:
        problems.append("error " + ", ".join(f"{e.code!r} ({e.message[:60]})" for e in errors[:3]))  # type: ignore[union-attr]
    evidence = {"finals": len(finals), "errors": len(errors)}
    if problems:
        return verdict(name, Status.FAIL, f"{who}: finalize with no audio broken: " + short(problems, 3), {}, evidence)
    return verdict(name, Status.PASS, f"{who}: finalize with no audio: no words, no error", {}, evidence)

"""One finished (or stopped) load session -> its sample lines, measured by the harness's own checks.

The latency definitions are those of ``harness.checks.latency`` and the word counts those of
``harness.checks.integrity``, applied to the session's history, so a ``final`` in a load run means
exactly what ``final_latency_ms`` means in every other suite. Imports neither Locust nor gevent.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Any

from harness.checks import integrity, latency
from harness.checks._common import ms_to_offset, ns_to_ms
from harness.checks.verdict import Status
from harness.history import History

SCRIPT_WORD_MS = 300  # the scripted engine's default word length (metadata.script_word_ms)


@dataclass(frozen=True)
class SessionMeta:
    """What the load user knew about a session before it ran."""

    engine: str
    fixture: str
    script: str | None  # the scripted engine's script: the expected words are exact
    audio_bytes: int
    word_ms: int = SCRIPT_WORD_MS
    user: int | None = None


def _wall(history: History, t_ns: int) -> float:
    return history.wall_t0 + (t_ns - history.t0_ns) / 1e9


def _request(history: History, t_ns: int, name: str, kind: str, ms: float) -> dict[str, Any]:
    return {"kind": "request", "t": round(_wall(history, t_ns), 6), "name": name, "type": kind,
            "ms": round(ms, 3), "session": history.session_id}


def final_latencies(history: History) -> list[tuple[int, float]]:
    """(t_ns, ms) per segment, exactly as ``latency.final_latency_samples`` measures them.

    The check looks up each final's last audio byte by scanning every frame sent, which costs
    tens of milliseconds at the end of a one-minute session: time in which the load process sends
    no audio. When the audio went out once, in order (no resend), the frame holding a byte is found
    by bisection instead; with any resend the check itself runs.
    """
    sends = [(r.data["offset"], r.data["offset"] + r.data["length"], r.t_ns) for r in history.of_kind("audio_sent")]
    if any(b[0] < a[1] for a, b in zip(sends, sends[1:])):
        return [(s.t_ns, s.ms) for s, _faulted in latency.final_latency_samples(history)]
    starts = [s[0] for s in sends]
    through = max((s[1] for s in sends), default=0)
    seen: set[int] = set()
    out = []
    for t, final in history.finals():
        if final.segment_id in seen:
            continue
        seen.add(final.segment_id)
        last_byte = min(ms_to_offset(history, final.end_ms), through) - 1
        if last_byte < 0:
            continue
        i = bisect.bisect_right(starts, last_byte) - 1
        if i < 0 or not sends[i][0] <= last_byte < sends[i][1]:
            continue
        out.append((t, ns_to_ms(t - sends[i][2])))
    return out


def latency_lines(history: History) -> list[dict[str, Any]]:
    """Every latency sample of the session, with the wall-clock time it was measured."""
    out = [_request(history, s.t_ns, "session_create", "HTTP", s.ms) for s in latency.session_create_samples(history)]
    out += [_request(history, s.t_ns, "connect", "WS", s.ms) for s in latency.connect_samples(history)]
    first, _ = latency.first_partial_sample(history)
    if first is not None:
        out.append(_request(history, first.t_ns, "first_partial", "WS", first.ms))
    out += [_request(history, t_ns, "final", "WS", ms) for t_ns, ms in final_latencies(history)]
    t_f = latency.finalize_time(history)
    if t_f is not None:
        after = [t for t, _ in history.finals() if t >= t_f]
        if after:
            out.append(_request(history, after[-1], "finalize", "WS", (after[-1] - t_f) / 1e6))
        events = [t for t, _ in history.events("pipeline_event") if t >= t_f]
        if events:
            out.append(_request(history, events[-1], "pipeline", "WS", (events[-1] - t_f) / 1e6))
    return out


def _exact_match(history: History, expected: list[str]) -> bool:
    """The cheap common case, read from the raw event dicts: the finals' words are exactly the
    expected words, segment ids run 0, 1, 2 … and every segment with partials got its final.

    The full checks align with jiwer (tens of ms per session), CPU that a load generator running
    hundreds of streams in one event loop cannot spare; they run only when this says no.
    """
    finals: dict[int, dict[str, Any]] = {}
    partial_ids: set[int] = set()
    for r in history.records:
        if r.kind != "event":
            continue
        event = r.data["event"]
        if event.get("type") == "final":
            finals.setdefault(event["segment_id"], event)
        elif event.get("type") == "partial" and str(event.get("text", "")).strip():
            partial_ids.add(event["segment_id"])
    ids = sorted(finals)
    if ids != list(range(len(ids))) or not partial_ids <= set(ids):
        return False
    words: list[str] = []
    for k in ids:
        final_words = finals[k].get("words")
        if not final_words and str(finals[k].get("text", "")).strip():
            return False  # a final without word timings: leave it to the checks
        words += [str(w.get("word", "")) for w in final_words or ()]
    return words == expected


def word_counts(history: History, meta: SessionMeta) -> tuple[dict[str, int | None], str | None]:
    """Lost and duplicated words and lost segments against the scripted engine's exact words, as
    ``harness.checks.integrity`` counts them.

    Without a script (a real engine) words cannot be judged exactly: all None.
    """
    if not meta.script:
        return {"lost_words": None, "duplicated_words": None, "lost_segments": None}, None
    expected = integrity.expected_scripted_words(meta.script, meta.audio_bytes, meta.word_ms)
    if _exact_match(history, expected):
        return {"lost_words": 0, "duplicated_words": 0, "lost_segments": 0}, None
    complete = integrity.completeness(history, expected)
    dup = integrity.duplicates(history, expected)
    seg = integrity.segments(history)
    counts = {
        "lost_words": int(complete.metrics.get("lost_words", 0)),
        "duplicated_words": int(dup.metrics.get("duplicated_words", 0)),
        "lost_segments": int(seg.metrics.get("lost_segments", 0)),
    }
    problems = [v.message for v in (complete, dup, seg) if v.status is Status.FAIL]
    return counts, "; ".join(problems) or None


def session_lines(
    history: History,
    meta: SessionMeta,
    *,
    completed: bool,
    error: str | None,
    interrupted: bool = False,
    reconnects: int = 0,
    pacing_ms: list[float] | None = None,
) -> list[dict[str, Any]]:
    """The request, failure and session lines of one session.

    An interrupted session (the load test stopped it) is neither a success nor a failure: its words
    are not judged, and its latency lines are flagged ``interrupted`` so that statistics leave them out.
    """
    lines = latency_lines(history)
    if interrupted:
        for line in lines:
            line["interrupted"] = True
    t_end_ns = history.records[-1].t_ns if history.records else history.t0_ns
    t1 = _wall(history, t_end_ns)
    duration_ms = (t_end_ns - history.t0_ns) / 1e6
    counts: dict[str, int | None] = {"lost_words": None, "duplicated_words": None, "lost_segments": None}
    failures = []
    if interrupted:
        status = "interrupted"
    else:
        if error or not completed:
            failures.append(("session", error or "the session did not complete (no close 1000 after finalize)"))
        else:
            counts, problem = word_counts(history, meta)
            if problem:
                failures.append(("words", problem))
        status = "failed" if failures else "ok"
    for name, why in failures:
        lines.append({"kind": "failure", "t": round(t1, 6), "name": name, "type": "WS", "ms": round(duration_ms, 3),
                      "session": history.session_id, "error": why})
    lines.append({
        "kind": "session", "t0": round(history.wall_t0, 6), "t1": round(t1, 6), "session": history.session_id,
        "status": status, "error": failures[0][1] if failures else None, "engine": meta.engine,
        "fixture": meta.fixture, "user": meta.user, "audio_bytes": meta.audio_bytes, "reconnects": reconnects,
        **counts, "pacing_ms": [round(v, 3) for v in (pacing_ms or [])],
    })
    return lines

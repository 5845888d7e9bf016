"""Latency checks: how long a client waits for each thing the backend promises.

Every measurement is a pair of history timestamps (monotonic ns), so it is what a client saw,
network included. Each check returns its raw samples under the metric names of
``harness.checks.metrics`` (SLOs judge those), fails only when given a ``limit_ms`` that a sample
exceeds, and is ``unknown`` when it has fewer than ``min_samples`` samples.

The ``*_samples`` functions return the timed samples themselves; the report plots them over time.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from harness.checks._common import (
    in_fault,
    ms_to_offset,
    ns_to_ms,
    sent_through,
    session_label,
    speech_onset_ms,
    verdict,
)
from harness.checks.verdict import Status, Verdict
from harness.history import History
from harness.protocols.events import Final, Partial, event_from_dict

_CREATE_PATH = re.compile(r"/v1/sessions/?(\?.*)?$")
_FINALIZE_PATH = re.compile(r"/v1/sessions/[^/]+/finalize/?(\?.*)?$")


@dataclass(frozen=True)
class Sample:
    """One latency measurement: ``t_ns`` is when it ended (monotonic), ``label`` what it measured."""

    t_ns: int
    ms: float
    label: str


# --- sample extraction -------------------------------------------------------------------
def session_create_samples(history: History) -> list[Sample]:
    """Answered (2xx) ``POST /v1/sessions`` calls."""
    out = []
    for r in history.of_kind("http"):
        d = r.data
        if str(d.get("method", "")).upper() != "POST" or not _CREATE_PATH.search(str(d.get("path", ""))):
            continue
        status = d.get("status")
        if status is not None and 200 <= int(status) < 300 and d.get("latency_ms") is not None:
            out.append(Sample(r.t_ns, float(d["latency_ms"]), f"POST {d.get('path')} -> {status}"))
    return out


def connect_samples(history: History) -> list[Sample]:
    """Completed WebSocket handshakes (``connected`` records)."""
    starts = {r.data.get("attempt"): r.t_ns for r in history.of_kind("connect")}
    out = []
    for r in history.of_kind("connected"):
        attempt = r.data.get("attempt")
        if r.data.get("latency_ms") is not None:
            value = float(r.data["latency_ms"])
        elif attempt in starts:
            value = ns_to_ms(r.t_ns - starts[attempt])
        else:
            continue
        out.append(Sample(r.t_ns, value, f"connection attempt {attempt}"))
    return out


def _hypotheses(history: History) -> list[tuple[int, Partial | Final]]:
    return list(_iter_hypotheses(history))


def _iter_hypotheses(history: History) -> Iterator[tuple[int, Partial | Final]]:
    """Partials and finals in arrival order, each parsed only when reached: the first partial is
    found without parsing the rest of an hour's events."""
    for r in history.records:
        if r.kind == "event" and r.data["event"]["type"] in (Partial.type, Final.type):
            yield r.t_ns, event_from_dict(r.data["event"])  # type: ignore[misc]


def first_partial_sample(history: History) -> tuple[Sample | None, str]:
    """The first hypothesis with text after the speech onset byte was sent, or why there is none."""
    onset = speech_onset_ms(history)
    if onset is None:
        return None, "no speech onset in the history's meta (speech_onset_ms)"
    offset = ms_to_offset(history, onset)
    sent_at = history.audio_send_time(offset)
    if sent_at is None:
        return None, f"the speech onset (offset {offset}, {onset:.0f} ms) was never sent"
    for t, event in _iter_hypotheses(history):
        if t >= sent_at and event.text.strip():
            return Sample(t, ns_to_ms(t - sent_at), f"{event.type} of segment {event.segment_id}: {event.text!r}"), ""
    return None, ""


def final_latency_samples(history: History) -> list[tuple[Sample, bool]]:
    """Per segment (first copy only): end audio byte sent -> final received; flag: overlaps a fault."""
    seen: set[int] = set()
    through = sent_through(history)
    out = []
    for t, final in history.finals():
        if final.segment_id in seen:
            continue
        seen.add(final.segment_id)
        last_byte = min(ms_to_offset(history, final.end_ms), through) - 1
        if last_byte < 0:
            continue
        sent_at = history.audio_send_time(last_byte)
        if sent_at is None:
            continue
        sample = Sample(t, ns_to_ms(t - sent_at), f"segment {final.segment_id} (ends {final.end_ms} ms)")
        out.append((sample, in_fault(history, sent_at, t)))
    return out


def finalize_time(history: History) -> int | None:
    """When the session was first asked to finalize, over the stream or over HTTP."""
    times = [
        r.t_ns
        for r in history.of_kind("control_sent")
        if _control_name(r.data.get("message")) in ("finalize", "close_stream", "closestream")
    ]
    times += [
        r.t_ns
        for r in history.of_kind("http")
        if str(r.data.get("method", "")).upper() == "POST" and _FINALIZE_PATH.search(str(r.data.get("path", "")))
    ]
    return min(times, default=None)


def _control_name(message: object) -> str:
    if isinstance(message, dict):
        message = message.get("type", "")
    return str(message or "").lower()


# --- verdicts -------------------------------------------------------------------------------
def _judge(
    name: str,
    metric: str,
    what: str,
    history: History,
    samples: list[Sample],
    limit_ms: float | None,
    min_samples: int,
    evidence: dict | None = None,
) -> Verdict:
    values = [s.ms for s in samples]
    evidence = dict(evidence or {})
    evidence["samples"] = [{"label": s.label, "ms": s.ms, "t_ms": history.ms_since_t0(s.t_ns)} for s in samples[:50]]
    metrics = {metric: values}
    who = session_label(history)
    if len(values) < min_samples:
        return verdict(
            name, Status.UNKNOWN, f"{who}: {len(values)} {what} sample(s), need {min_samples}", metrics, evidence
        )
    worst = max(samples, key=lambda s: s.ms)
    if limit_ms is not None:
        over = [s for s in samples if s.ms > limit_ms]
        if over:
            evidence["over_limit"] = [{"label": s.label, "ms": s.ms} for s in over]
            return verdict(
                name,
                Status.FAIL,
                f"{who}: {what} {worst.ms:.0f} ms for {worst.label} exceeds {limit_ms:.0f} ms "
                f"({len(over)} of {len(samples)} over the limit)",
                metrics,
                evidence,
            )
    return verdict(name, Status.PASS, f"{who}: {what} worst {worst.ms:.0f} ms over {len(samples)} sample(s)", metrics, evidence)


def session_creation(history: History, limit_ms: float | None = None, min_samples: int = 1) -> Verdict:
    """Session creation time (``session_create_ms``)."""
    return _judge(
        "latency.session_create", "session_create_ms", "session creation", history,
        session_create_samples(history), limit_ms, min_samples,
    )


def connect(history: History, limit_ms: float | None = None, min_samples: int = 1) -> Verdict:
    """WebSocket handshake time (``connect_ms``), every attempt that completed."""
    failed = [r.data for r in history.of_kind("connect_failed")]
    return _judge(
        "latency.connect", "connect_ms", "connect", history, connect_samples(history), limit_ms, min_samples,
        {"failed_attempts": failed} if failed else None,
    )


def first_partial(history: History, limit_ms: float | None = None) -> Verdict:
    """Speech onset sent -> first hypothesis (``first_partial_ms``). Fails if none ever came."""
    sample, why = first_partial_sample(history)
    if sample is None and why:
        return verdict("latency.first_partial", Status.UNKNOWN, f"{session_label(history)}: {why}", {"first_partial_ms": []})
    if sample is None:
        onset = speech_onset_ms(history)
        return verdict(
            "latency.first_partial",
            Status.FAIL,
            f"{session_label(history)}: no partial or final with text arrived after the speech onset "
            f"({onset:.0f} ms into the audio) was sent",
            {"first_partial_ms": []},
            {"speech_onset_ms": onset, "hypotheses": len(_hypotheses(history))},
        )
    return _judge("latency.first_partial", "first_partial_ms", "time to first partial", history, [sample], limit_ms, 1)


def final_latency(
    history: History, limit_ms: float | None = None, min_samples: int = 1, include_faults: bool = False
) -> Verdict:
    """A segment's end audio sent -> its final (``final_latency_ms``).

    Segments whose wait overlaps a fault window are left out unless ``include_faults``: a fault's
    cost is measured by ``recovery_ms`` and ``added_latency_ms``, not by the steady-state SLO.
    """
    pairs = final_latency_samples(history)
    samples = [s for s, faulted in pairs if include_faults or not faulted]
    excluded = [s.label for s, faulted in pairs if faulted and not include_faults]
    return _judge(
        "latency.final", "final_latency_ms", "final latency", history, samples, limit_ms, min_samples,
        {"excluded_during_faults": excluded} if excluded else None,
    )


def finalize_latency(history: History, limit_ms: float | None = None) -> Verdict:
    """finalize sent -> the last final after it (``finalize_final_ms``).

    No final after finalize is ``unknown`` (every word may already have been final), except when
    a segment had partials and never got its final: that is a final lost on close, a failure.
    """
    name, who = "latency.finalize", session_label(history)
    t_f = finalize_time(history)
    if t_f is None:
        return verdict(name, Status.UNKNOWN, f"{who}: finalize was never sent", {"finalize_final_ms": []})
    after = [(t, f) for t, f in history.finals() if t >= t_f]
    if after:
        t_last, last = after[-1]
        sample = Sample(t_last, ns_to_ms(t_last - t_f), f"segment {last.segment_id}")
        return _judge(name, "finalize_final_ms", "finalize to last final", history, [sample], limit_ms, 1)
    finalized = {f.segment_id for _, f in history.finals()}
    open_segments = sorted(
        {p.segment_id for _, p in history.events("partial") if p.text.strip()} - finalized  # type: ignore[union-attr]
    )
    if open_segments:
        last_partial = [p for _, p in history.events("partial") if p.segment_id == open_segments[-1]][-1]
        return verdict(
            name,
            Status.FAIL,
            f"{who}: segment {open_segments[-1]} had partials ({last_partial.text!r}) but no final arrived "
            f"after finalize: the last final was lost on close",
            {"finalize_final_ms": []},
            {"open_segments": open_segments, "finalize_t_ms": history.ms_since_t0(t_f)},
        )
    return verdict(name, Status.UNKNOWN, f"{who}: no final after finalize (nothing was left open)", {"finalize_final_ms": []})


def pipeline_latency(history: History, limit_ms: float | None = None) -> Verdict:
    """finalize sent -> the last pipeline event (``pipeline_ms``)."""
    name, who = "latency.pipeline", session_label(history)
    t_f = finalize_time(history)
    if t_f is None:
        return verdict(name, Status.UNKNOWN, f"{who}: finalize was never sent", {"pipeline_ms": []})
    events = [(t, e) for t, e in history.events("pipeline_event") if t >= t_f]
    if not events:
        return verdict(name, Status.UNKNOWN, f"{who}: no pipeline event arrived after finalize", {"pipeline_ms": []})
    t_last, last = events[-1]
    sample = Sample(t_last, ns_to_ms(t_last - t_f), f"finalize -> {last.name}")  # type: ignore[union-attr]
    return _judge(name, "pipeline_ms", "finalize to pipeline done", history, [sample], limit_ms, 1)


def partial_cadence(history: History, max_gap_ms: float = 1000.0) -> Verdict:
    """No silence longer than ``max_gap_ms`` between hypotheses while speech audio is being sent.

    The window runs from the first hypothesis after the speech onset to the last audio frame sent
    before finalize (or to ``meta.speech_end_ms`` when known). The lead-in is the first-partial
    latency and the tail may be trailing silence, so neither counts; gaps that overlap a fault
    window or a reconnect are left out (a fault's cost is measured elsewhere).
    """
    name, who = "latency.partial_cadence", session_label(history)
    sends = history.of_kind("audio_sent")
    if not sends:
        return verdict(name, Status.UNKNOWN, f"{who}: no audio was sent", {"partial_gap_ms": []})
    onset = speech_onset_ms(history)
    t_on = history.audio_send_time(ms_to_offset(history, onset)) if onset is not None else sends[0].t_ns
    t_f = finalize_time(history)
    t_end = max((r.t_ns for r in sends if t_f is None or r.t_ns <= t_f), default=sends[-1].t_ns)
    end_ms = history.meta.get("speech_end_ms")
    if end_ms is not None:
        t_speech_end = history.audio_send_time(ms_to_offset(history, float(end_ms)))
        if t_speech_end is not None:
            t_end = min(t_end, t_speech_end)
    if t_on is None:
        return verdict(name, Status.UNKNOWN, f"{who}: the speech onset was never sent", {"partial_gap_ms": []})
    hyps = [(t, e) for t, e in _hypotheses(history) if t_on <= t <= t_end]
    if len(hyps) < 2:
        return verdict(
            name, Status.UNKNOWN,
            f"{who}: {len(hyps)} hypothesis(es) while speech flowed, need 2 to measure cadence",
            {"partial_gap_ms": []},
        )
    reconnects = [r.t_ns for r in history.of_kind("connect")]
    gaps, worst = [], None
    for (t0, e0), (t1, e1) in zip(hyps, hyps[1:]):
        if in_fault(history, t0, t1) or any(t0 < c < t1 for c in reconnects):
            continue
        gap = ns_to_ms(t1 - t0)
        gaps.append(gap)
        if worst is None or gap > worst[0]:
            worst = (gap, t0, t1, e0, e1)
    metrics = {"partial_gap_ms": gaps}
    if worst is None:
        return verdict(name, Status.UNKNOWN, f"{who}: every gap overlapped a fault or reconnect", metrics)
    gap, t0, t1, e0, e1 = worst
    evidence = {
        "max_gap_ms": gap,
        "gap_from": {"t_ms": history.ms_since_t0(t0), "type": e0.type, "segment_id": e0.segment_id, "text": e0.text},
        "gap_to": {"t_ms": history.ms_since_t0(t1), "type": e1.type, "segment_id": e1.segment_id, "text": e1.text},
        "audio_sent_during_gap": sum(r.data["length"] for r in sends if t0 < r.t_ns < t1),
    }
    if gap > max_gap_ms:
        return verdict(
            name, Status.FAIL,
            f"{who}: no partial for {gap:.0f} ms while speech was sent (limit {max_gap_ms:.0f} ms), from "
            f"{e0.type} of segment {e0.segment_id} at +{history.ms_since_t0(t0):.0f} ms to {e1.type} of "
            f"segment {e1.segment_id} at +{history.ms_since_t0(t1):.0f} ms",
            metrics, evidence,
        )
    return verdict(name, Status.PASS, f"{who}: longest gap between partials {gap:.0f} ms", metrics, evidence)


def all_checks(history: History) -> list[Verdict]:
    """Every latency check with its defaults (no limits: SLOs judge the samples)."""
    return [
        session_creation(history),
        connect(history),
        first_partial(history),
        final_latency(history),
        finalize_latency(history),
        pipeline_latency(history),
        partial_cadence(history),
    ]

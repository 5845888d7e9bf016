"""The chaos matrix's checks: what every fault case is asked once it has run.

Pure functions of a finished case (its history, the session's outcome and the clean baseline):
the session completes, the words are all there exactly once, finals in order with no holes,
replays identical, audio gaps resent, the pipeline ran exactly once (stream events and the
server's record), recovery and added latency measured, a known injected latency measured
within 10 %, and for the silent client, that the server dropped it and left ``streaming``.

On a target without resume the client reconnects as a new session after a fault, and the checks
are those that apply there (each names what it needs): the words around the fault against a
clean baseline (:mod:`harness.checks.reconnect`), the sessions left behind closed (needs
``session_lookup``), the next session served, finals in order, recovery (fault end -> next
result) and added latency.
"""

from __future__ import annotations

import statistics
from typing import TYPE_CHECKING, Any

from harness.checks import integrity, latency, lifecycle, reconnect, recovery
from harness.checks import session as session_checks
from harness.checks._common import in_fault, session_label
from harness.checks.latency import final_latency_samples
from harness.checks.verdict import Status, Verdict
from harness.history import FaultWindow, History

if TYPE_CHECKING:
    from harness.drivers.session import SessionOutcome
    from harness.faults.matrix_runner import CaseRun

SILENT_SLACK_S = 2.0  # on top of 2 x heartbeat_s: scheduling on a busy two-core machine


def case_verdicts(run: CaseRun) -> list[Verdict]:
    """Everything the matrix asks of a finished case (pure: reads the history and outcome)."""
    if run.case.kind == "silent_client":
        return silent_client_verdicts(run)
    h, out, case = run.history, run.outcome, run.case
    who = session_label(h)
    verdicts: list[Verdict] = []
    assert out is not None
    if case.steps:
        ended = [w for w in h.faults if w.end_ns is not None]
        if run.injected_error or not ended:
            verdicts.append(Verdict("chaos.fault_injected", Status.UNKNOWN,
                                    f"{who}: the {case.fault} fault never took effect: {run.injected_error or 'no window recorded'}"))
        else:
            verdicts.append(Verdict("chaos.fault_injected", Status.PASS,
                                    f"{who}: {len(ended)} {case.fault} window(s)",
                                    evidence={"windows": [_window_row(h, w) for w in ended]}))
    completed_ok = out.completed and out.error is None
    verdicts.append(Verdict(
        "chaos.session_completed", Status.PASS if completed_ok else Status.FAIL,
        f"{who}: completed after {out.reconnects} reconnect(s)" if completed_ok else
        f"{who}: did not complete under {case.fault}: {out.error or f'closed {out.close_code}'}",
        evidence={"reconnects": out.reconnects, "close_code": out.close_code, "state": out.state},
    ))
    if not resumes(run.capabilities):
        return verdicts + reconnect_verdicts(run, verdicts)
    baseline = run.baseline
    verdicts += [
        integrity.completeness(h, baseline),
        integrity.duplicates(h, baseline),
        integrity.segments(h),
        integrity.ordering(h),
        integrity.replays(h),
        integrity.final_recovery(h),
        integrity.audio_gaps(h),
        lifecycle.pipeline_events(h),
        _pipeline_once_on_server(h, out),
    ]
    verdicts.append(_fault_cost(h))
    verdicts += steady_state_latencies(h)
    verdicts.append(session_checks.session_success(h, verdicts))
    if case.trust_latency_ms is not None:
        verdicts.append(latency_trust(h, case.trust_latency_ms))
    return verdicts


def resumes(capabilities: frozenset[str]) -> bool:
    """Whether the target resumes a session (the full resume checks apply); see harness.faults.matrix."""
    from harness.faults.matrix import resumes as _resumes

    return _resumes(capabilities)


def reconnect_verdicts(run: CaseRun, so_far: list[Verdict]) -> list[Verdict]:
    """The checks of a case on a target without resume (the client reconnected as a new session)."""
    h = run.history
    out = [reconnect.words_around_fault(h, run.baseline_segments), integrity.ordering(h),
           reconnect.next_session_served(h, run.probe)]
    if "session_lookup" in run.capabilities:
        out.append(reconnect.interrupted_sessions_closed(h, run.session_states))
    out.append(_fault_cost(h, progress="result"))
    out += steady_state_latencies(h)
    out.append(session_checks.session_success(h, so_far + out))
    return out


def steady_state_latencies(h: History) -> list[Verdict]:
    """The fault-free latencies of a chaos session, for the run's SLOs: session creation, connects
    and finals outside every fault window, the first partial (real ASR only: the scripted engine's
    timing is its script's) and the pipeline when no fault touched it. A fault's own cost is in
    ``recovery_ms`` and ``added_latency_ms``. Only verdicts with samples are returned: a latency
    a fault made unmeasurable is not a reason to call the session unknown."""
    out = [latency.session_creation(h), latency.final_latency(h)]
    clean = [s for s in latency.connect_samples(h) if not in_fault(h, s.t_ns - int(s.ms * 1e6), s.t_ns)]
    if clean:
        out.append(Verdict("latency.connect", Status.PASS,
                           f"{session_label(h)}: {len(clean)} connect(s) outside fault windows, worst "
                           f"{max(s.ms for s in clean):.0f} ms", {"connect_ms": [s.ms for s in clean]}))
    if h.meta.get("engine") != "scripted":
        sample, _ = latency.first_partial_sample(h)
        if sample is not None and not in_fault(h, sample.t_ns - int(sample.ms * 1e6), sample.t_ns):
            out.append(latency.first_partial(h))
    pipeline = latency.pipeline_latency(h)
    t_f = latency.finalize_time(h)
    events = h.events("pipeline_event")
    if t_f is not None and events and not in_fault(h, t_f, events[-1][0]):
        out.append(pipeline)
    return [v for v in out if v.status is Status.PASS]


def _window_row(h: History, w: FaultWindow) -> dict[str, Any]:
    return {"kind": w.kind, "target": w.target, "params": w.params, "start_ms": h.ms_since_t0(w.start_ns),
            "end_ms": h.ms_since_t0(w.end_ns) if w.end_ns is not None else None}


def _pipeline_once_on_server(h: History, out: SessionOutcome) -> Verdict:
    """The server's own record (GET /v1/sessions/{id} ``events``): each pipeline event once, in order."""
    who = session_label(h)
    body = out.final_state
    if not isinstance(body, dict):
        return Verdict("chaos.pipeline_once", Status.UNKNOWN, f"{who}: no final session state to read the pipeline from")
    names = [n for n in lifecycle.body_events(body) if n in lifecycle.KNOWN_EVENTS]
    problems = lifecycle.sequence_problems(names)
    if body.get("state") != "completed":
        problems.append(f"state is {body.get('state')!r}, not 'completed'")
    if problems:
        return Verdict("chaos.pipeline_once", Status.FAIL, f"{who}: the server's pipeline record is wrong: "
                       + "; ".join(problems[:4]), evidence={"events": names})
    return Verdict("chaos.pipeline_once", Status.PASS, f"{who}: the pipeline ran exactly once ({len(names)} events)",
                   evidence={"events": names})


def _fault_cost(h: History, progress: str = "ack") -> Verdict:
    """recovery_ms and added_latency_ms as measured, whether or not they apply to this fault (a
    fault after the last audio has no ack to recover to): the report's chaos matrix reads them.
    A session that sent audio after a fault and never got an ack again fails."""
    rec = recovery.recovery(h, progress=progress) if h.faults else None
    added = recovery.added_latency(h) if h.faults else None
    metrics = {
        "recovery_ms": rec.metrics.get("recovery_ms", []) if rec else [],
        "added_latency_ms": added.metrics.get("added_latency_ms", []) if added and added.passed else [],
    }
    who = session_label(h)
    if rec is not None and rec.status is Status.FAIL:
        return Verdict("chaos.recovery", Status.FAIL, rec.message, metrics, rec.evidence)
    parts = []
    if metrics["recovery_ms"]:
        parts.append(f"recovered within {max(metrics['recovery_ms']):.0f} ms")
    if metrics["added_latency_ms"]:
        parts.append(f"added up to {max(metrics['added_latency_ms']):.0f} ms to finals")
    evidence = {"recovery": rec.evidence if rec else {}, "added_latency": added.evidence if added else {}}
    return Verdict("chaos.recovery", Status.PASS, f"{who}: " + ("; ".join(parts) or "nothing to recover from"),
                   metrics, evidence)


def _iqr(values: list[float]) -> float:
    if len(values) < 4:
        return 0.0
    q = statistics.quantiles(values, n=4)
    return q[2] - q[0]


def latency_trust(h: History, injected_ms: float, tolerance: float = 0.10) -> Verdict:
    """The harness measures a known injected latency within ``tolerance``: median final latency of
    segments sent and received inside the window, minus the median outside any window.

    The allowance is ``tolerance`` of the injected latency or the spread (interquartile range) of
    the same session's finals, clean or faulted, whichever is larger: on a loaded machine the finals
    themselves scatter by more than 10 % of 300 ms, and that noise is not the measurement's error."""
    who = session_label(h)
    windows = [w for w in h.faults if w.end_ns is not None]
    inside, clean = [], []
    for sample, faulted in final_latency_samples(h):
        sent_ns = sample.t_ns - int(sample.ms * 1e6)
        if not faulted:
            clean.append(sample.ms)
        elif any(w.start_ns <= sent_ns and sample.t_ns <= w.end_ns for w in windows):  # type: ignore[operator]
            inside.append(sample.ms)
    if len(inside) < 3 or len(clean) < 3:
        return Verdict("chaos.latency_measured", Status.UNKNOWN,
                       f"{who}: too few finals to measure ({len(inside)} inside the window, {len(clean)} outside)")
    measured = statistics.median(inside) - statistics.median(clean)
    error = abs(measured - injected_ms) / injected_ms
    noise_ms = max(_iqr(clean), _iqr(inside))
    allowed_ms = max(tolerance * injected_ms, noise_ms)
    metrics = {"added_latency_ms": [round(measured, 3)]}
    evidence = {"inside_ms": inside, "clean_ms": clean, "injected_ms": injected_ms, "error": round(error, 4),
                "noise_iqr_ms": round(noise_ms, 3), "allowed_ms": round(allowed_ms, 3)}
    if abs(measured - injected_ms) > allowed_ms:
        return Verdict("chaos.latency_measured", Status.FAIL,
                       f"{who}: injected {injected_ms:.0f} ms of downstream latency, measured {measured:.0f} ms "
                       f"({error:.0%} off; allowed {allowed_ms:.0f} ms: {tolerance:.0%} or the finals' own "
                       f"spread of {noise_ms:.0f} ms)", metrics, evidence)
    return Verdict("chaos.latency_measured", Status.PASS,
                   f"{who}: injected {injected_ms:.0f} ms, measured {measured:.0f} ms ({error:.1%} off) over "
                   f"{len(inside)} finals", metrics, evidence)


def silent_client_verdicts(run: CaseRun) -> list[Verdict]:
    h, x = run.history, run.extra
    who = session_label(h)
    limit = x["limit_ms"]
    hb = x["heartbeat_s"]
    never_pinged = x["pongs_withheld"] == 0
    why = " (no ping arrived to be left unanswered: the server never pinged)" if never_pinged else ""
    out = []
    closed = x["closed_ms"]
    if closed is None or closed > limit:
        seen = f"not dropped within {x['observed_ms']:.0f} ms" if closed is None else f"dropped only after {closed:.0f} ms"
        out.append(Verdict("chaos.dead_client_dropped", Status.FAIL,
                           f"{who}: a client that stopped answering pings was {seen}; limit 2 x heartbeat "
                           f"({hb:g} s) + {SILENT_SLACK_S:g} s = {limit:.0f} ms{why}", {}, x))
    else:
        out.append(Verdict("chaos.dead_client_dropped", Status.PASS,
                           f"{who}: the silent client was dropped after {closed:.0f} ms (close "
                           f"{x['server_close_code']}, limit {limit:.0f} ms)", {}, x))
    left = x["left_streaming_ms"]
    if left is None or left > limit:
        seen = (f"'streaming' for all of the {x['observed_ms']:.0f} ms observed" if left is None
                else f"'streaming' for {left:.0f} ms")
        out.append(Verdict("chaos.dead_client_state", Status.FAIL,
                           f"{who}: the session of a dead client stayed {seen} (limit {limit:.0f} ms); "
                           f"states: {x['states']}{why}", {}, x))
    else:
        out.append(Verdict("chaos.dead_client_state", Status.PASS,
                           f"{who}: the session left 'streaming' after {left:.0f} ms ({x['states'][-1][1]!r})", {}, x))
    return out


__all__ = ["SILENT_SLACK_S", "case_verdicts", "reconnect_verdicts", "resumes", "latency_trust", "silent_client_verdicts", "steady_state_latencies"]

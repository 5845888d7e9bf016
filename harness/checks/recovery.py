"""What a fault cost: time to recover after it ended, and latency added while it lasted.

Faults are windows (``History.faults``), so both are measured from the history alone.
"""

from __future__ import annotations

import statistics

from harness.checks._common import ns_to_ms, session_label, short, verdict
from harness.checks.latency import final_latency_samples
from harness.checks.verdict import Status, Verdict
from harness.history import History


PROGRESS = {"ack": ("ack",), "result": ("partial", "final")}


def recovery(history: History, limit_ms: float | None = None, progress: str = "ack") -> Verdict:
    """Fault end -> the next ack (``recovery_ms``), per ended fault window; with ``progress="result"``
    (a protocol whose server acks nothing) the next transcript result, partial or final.

    A window after which the session sent no more audio is skipped (nothing to recover); one
    followed by audio but never by an ack (result) fails: the session did not come back.
    """
    name, who = "recovery.time", session_label(history)
    if progress not in PROGRESS:
        raise ValueError(f"progress must be one of {sorted(PROGRESS)}, got {progress!r}")
    windows = [w for w in history.faults if w.end_ns is not None]
    if not windows:
        return verdict(name, Status.UNKNOWN, f"{who}: no ended fault window to recover from", {"recovery_ms": []})
    acks = sorted(t for kind in PROGRESS[progress] for t, _ in history.events(kind))
    sends = [r.t_ns for r in history.of_kind("audio_sent")]
    samples, never, rows = [], [], []
    for w in windows:
        nxt = next((t for t in acks if t >= w.end_ns), None)  # type: ignore[operator]
        label = f"{w.kind} {w.target}".strip()
        if nxt is None:
            if any(t >= w.end_ns for t in sends):  # type: ignore[operator]
                never.append(f"{label} ended at +{history.ms_since_t0(w.end_ns):.0f} ms")  # type: ignore[arg-type]
            continue
        ms = ns_to_ms(nxt - w.end_ns)  # type: ignore[operator]
        samples.append(ms)
        rows.append({"fault": label, "params": w.params, "recovery_ms": ms})
    metrics = {"recovery_ms": samples}
    evidence = {"windows": rows, "never_recovered": never}
    if never:
        return verdict(name, Status.FAIL, f"{who}: no {' or '.join(PROGRESS[progress])} after the fault ended: "
                       + short(never, 3), metrics, evidence)
    if not samples:
        return verdict(name, Status.UNKNOWN, f"{who}: no audio after any fault ended", metrics, evidence)
    worst = max(samples)
    if limit_ms is not None and worst > limit_ms:
        return verdict(name, Status.FAIL, f"{who}: recovered {worst:.0f} ms after a fault ended (limit {limit_ms:.0f} ms)", metrics, evidence)
    return verdict(name, Status.PASS, f"{who}: recovered within {worst:.0f} ms after {len(samples)} fault(s)", metrics, evidence)


def added_latency(history: History, baseline_ms: float | None = None) -> Verdict:
    """Final latency of segments waited on during a fault minus the fault-free median (``added_latency_ms``).

    ``baseline_ms``: the fault-free median from another run; by default the same session's
    segments outside fault windows. Informational: SLOs judge it.
    """
    name, who = "recovery.added_latency", session_label(history)
    pairs = final_latency_samples(history)
    clean = [s.ms for s, faulted in pairs if not faulted]
    faulted = [s for s, f in pairs if f]
    if baseline_ms is None:
        if not clean:
            return verdict(name, Status.UNKNOWN, f"{who}: no fault-free final to compare with", {"added_latency_ms": []})
        baseline_ms = statistics.median(clean)
    if not faulted:
        return verdict(name, Status.UNKNOWN, f"{who}: no final was waited on during a fault", {"added_latency_ms": []})
    added = [round(s.ms - baseline_ms, 3) for s in faulted]
    evidence = {"baseline_ms": baseline_ms, "faulted": [{"label": s.label, "ms": s.ms} for s in faulted]}
    return verdict(
        name, Status.PASS,
        f"{who}: faults added up to {max(added):.0f} ms to {len(added)} final(s) (baseline {baseline_ms:.0f} ms)",
        {"added_latency_ms": added}, evidence,
    )

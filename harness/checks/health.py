"""Health: do ``/health`` and ``/v1/stats`` tell the truth?

Input: snapshots of either endpoint's JSON body with the monotonic time they were taken and,
when the scenario knows it, how many connections and sessions the harness itself held open at
that moment. The server's figures must be integers (never ``"N/A"``, never a float or a string)
and must track the harness's own counts: up while connections are open, back down after close.
Other clients may be connected, so the first snapshot's excess over the harness's count is
taken as a baseline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.checks._common import ns_to_ms, short, verdict
from harness.checks.verdict import Status, Verdict

HEALTH_INTEGERS = ("active_connections", "active_sessions", "active_buffers", "stalled_transactions", "rss_bytes")
HEALTH_NUMBERS = ("uptime_s",)
STATS_INTEGERS = ("websocket_connections", "sessions_created_total", "sessions_failed_last_hour", "high_latency_warnings")
STATS_OPTIONAL_NUMBERS = ("avg_session_creation_ms", "p95_final_latency_ms")  # null until there is a sample

# server field -> which harness count it must match
COUNTED = {"active_connections": "connections", "websocket_connections": "connections", "active_sessions": "sessions"}


@dataclass
class Snapshot:
    """One answer of ``/health`` or ``/v1/stats``; ``connections``/``sessions``: the harness's own counts."""

    t_ns: int
    body: dict[str, Any]
    endpoint: str = "/health"
    connections: int | None = None
    sessions: int | None = None

    @classmethod
    def of(cls, item: Snapshot | dict[str, Any]) -> Snapshot:
        if isinstance(item, Snapshot):
            return item
        missing = [k for k in ("t_ns", "body") if k not in item]
        if missing:
            raise ValueError(f"health snapshot {item!r} lacks {', '.join(missing)}")
        return cls(**{k: item[k] for k in ("t_ns", "body", "endpoint", "connections", "sessions") if k in item})


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def field_problems(snap: Snapshot) -> list[str]:
    """Fields missing or of the wrong type in one snapshot."""
    body, ep = snap.body, snap.endpoint
    problems = []
    stats = ep.rstrip("/").endswith("/stats")
    integers = STATS_INTEGERS if stats else HEALTH_INTEGERS
    for key in integers:
        if key not in body:
            problems.append(f"{ep} has no {key}")
        elif not _is_int(body[key]) or body[key] < 0:
            problems.append(f"{ep} {key} is {body[key]!r}, expected a non-negative integer")
    for key in () if stats else HEALTH_NUMBERS:
        if key in body and not _is_number(body[key]):
            problems.append(f"{ep} {key} is {body[key]!r}, expected a number")
    for key in STATS_OPTIONAL_NUMBERS if stats else ():
        if key in body and body[key] is not None and not _is_number(body[key]):
            problems.append(f"{ep} {key} is {body[key]!r}, expected a number or null")
    if not stats and body.get("status") not in ("ok", "degraded"):
        problems.append(f"{ep} status is {body.get('status')!r}, expected 'ok' or 'degraded'")
    if stats and "alerts" in body:
        alerts = body["alerts"]
        if not isinstance(alerts, list) or any(not isinstance(a, dict) or not _is_int(a.get("count")) for a in alerts):
            problems.append(f"{ep} alerts is {str(alerts)[:80]}, expected a list of objects with an integer count")
    return problems


def health(snapshots: list[Snapshot | dict[str, Any]], tolerance: int = 0) -> Verdict:
    """Types of every figure, and the counts against the harness's own, within ``tolerance``."""
    name = "health.truthful"
    snaps = sorted((Snapshot.of(s) for s in snapshots), key=lambda s: s.t_ns)
    if not snaps:
        return verdict(name, Status.UNKNOWN, "no /health or /v1/stats snapshot taken", {})
    t0 = snaps[0].t_ns
    problems: list[str] = []
    for s in snaps:
        problems += [f"{p} at +{ns_to_ms(s.t_ns - t0):.0f} ms" for p in field_problems(s)]
    baseline: dict[tuple[str, str], int] = {}
    compared = 0
    rows = []
    for s in snaps:
        for field, harness_key in COUNTED.items():
            ours = getattr(s, harness_key)
            theirs = s.body.get(field)
            if ours is None or not _is_int(theirs):
                continue
            key = (s.endpoint, field)
            baseline.setdefault(key, max(0, theirs - ours))
            expected = baseline[key] + ours
            compared += 1
            rows.append({"t_ms": ns_to_ms(s.t_ns - t0), "endpoint": s.endpoint, "field": field, "reported": theirs,
                         "harness": ours, "expected": expected})
            if abs(theirs - expected) > tolerance:
                why = (" after every connection closed: the count does not come back down" if ours == 0 and theirs > expected
                       else (" (undercounted)" if theirs < expected else " (overcounted)"))
                problems.append(f"{s.endpoint} {field} is {theirs} at +{ns_to_ms(s.t_ns - t0):.0f} ms while the harness "
                                f"holds {ours} open (baseline {baseline[key]}){why}")
    evidence = {"comparisons": rows, "snapshots": len(snaps)}
    if problems:
        return verdict(name, Status.FAIL, "health figures are wrong: " + short(problems, 3), {}, evidence)
    detail = f"; {compared} count(s) matched the harness's" if compared else ""
    return verdict(name, Status.PASS, f"{len(snaps)} snapshot(s) well-typed{detail}", {}, evidence)


def vanished_client(before: Snapshot | dict[str, Any], after: Snapshot | dict[str, Any], *, ends_on_drop: bool,
                    session_state: str | None = None, waited_s: float | None = None) -> Verdict:
    """A client that vanished without finalize (stopped answering, no close) is let go once the
    server's idle and heartbeat limits have passed: ``after`` (taken then) counts no more
    ``active_connections`` than ``before`` (taken before the session), and

    - ``ends_on_drop`` (a protocol that cannot resume, where a dropped connection ends the
      session): no more ``active_sessions`` either;
    - otherwise the session may wait for its client to resume, but not as ``streaming``
      (``session_state``, when the session can be read back).
    """
    name = "health.vanished_client"
    before, after = Snapshot.of(before), Snapshot.of(after)
    waited = f" {waited_s:.0f} s after the client went silent" if waited_s is not None else ""
    fields = ["active_connections"] + (["active_sessions"] if ends_on_drop else [])
    problems, rows = [], {}
    for field in fields:
        a, b = before.body.get(field), after.body.get(field)
        rows[field] = {"before": a, "after": b}
        if not (_is_int(a) and _is_int(b)):
            problems.append(f"{field} is {b!r} (before the session: {a!r}), not an integer to compare")
        elif b > a:
            problems.append(f"{field} is still {b}{waited} (before the session: {a}): the vanished client's "
                            f"{'connection' if field == 'active_connections' else 'session'} is still counted")
    if not ends_on_drop and session_state == "streaming":
        problems.append(f"the session is still 'streaming'{waited}: the server never noticed its client was gone")
    evidence = {"counts": rows, "session_state": session_state, "waited_s": waited_s, "ends_on_drop": ends_on_drop}
    if problems:
        return verdict(name, Status.FAIL, "; ".join(problems), {}, evidence)
    kept = "" if ends_on_drop else f"; the session waits for a resume as {session_state!r}" if session_state else ""
    return verdict(name, Status.PASS, f"the vanished client was let go{waited}{kept}", {}, evidence)


def _metric_samples(text: str) -> dict[str, float]:
    """name -> value of every unlabelled sample in a Prometheus text exposition; ValueError if it
    does not parse."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if not sample.labels:
                out[sample.name] = float(sample.value)
    return out


def metrics_match_stats(stats_before: dict[str, Any], metrics_text: str, stats_after: dict[str, Any]) -> Verdict:
    """``GET /metrics`` is a Prometheus text exposition of the same figures as ``/v1/stats``: for
    each of the documented integer figures, a sample named ``<prefix>_<figure>`` (or with
    ``_total``) whose value lies between the two ``/v1/stats`` answers taken before and after it
    (other clients may move the figures meanwhile)."""
    name = "health.metrics"
    try:
        samples = _metric_samples(metrics_text)
    except ValueError as exc:
        return verdict(name, Status.FAIL, f"/metrics is not Prometheus text exposition: {exc}",
                       evidence={"metrics": metrics_text[:500]})
    problems, rows = [], {}
    for figure in STATS_INTEGERS:
        a, b = stats_before.get(figure), stats_after.get(figure)
        names = [n for n in samples if n.endswith("_" + figure) or n.endswith("_" + figure + "_total")
                 or n in (figure, figure + "_total")]
        if not names:
            problems.append(f"no sample for {figure}")
            continue
        value = samples[names[0]]
        rows[figure] = {"metric": names[0], "value": value, "stats_before": a, "stats_after": b}
        if _is_number(a) and _is_number(b) and not min(a, b) <= value <= max(a, b):
            problems.append(f"{names[0]} is {value:g} while /v1/stats said {a} then {b}")
    evidence = {"figures": rows, "samples": len(samples)}
    if problems:
        return verdict(name, Status.FAIL, "/metrics disagrees with /v1/stats: " + short(problems, 4), {}, evidence)
    return verdict(name, Status.PASS, f"/metrics has {len(rows)} of /v1/stats' figures, each matching "
                   f"({len(samples)} samples)", {}, evidence)

"""Raw load samples: the JSONL files Locust workers write, and the exact statistics made from them.

Locust's own percentiles come from rounded response-time buckets, fine for a live view but not for
judging an SLO. So every worker process also appends what it measured, unrounded, to
``samples-<pid>.jsonl`` in the run's samples folder, and the gate is judged on those.

This module imports neither Locust nor gevent: the CLI and pytest read the files with it, and the
Locust shape reads them through it to decide when a capacity step broke.

One JSON object per line, with ``kind``:

``request``  ``t`` (wall clock, s, when the measurement ended), ``name`` (a step of ``STEPS``),
             ``type`` (``HTTP``/``WS``), ``ms``, ``session``, and ``interrupted: true`` for a
             session the load test stopped: such lines are kept apart and never counted
``failure``  ``t``, ``name`` (``session`` for a session that ended in error, ``words`` for lost or
             duplicated words), ``type``, ``ms``, ``session``, ``error``
``session``  ``t0``, ``t1``, ``session``, ``status`` (``ok`` | ``failed`` | ``interrupted``: the
             load test stopped it), ``error``, ``engine``, ``fixture``, ``audio_bytes``,
             ``reconnects``, ``lost_words``, ``duplicated_words``, ``lost_segments`` (None when not
             judged), ``pacing_ms`` (every paced chunk's send time minus its due time)
"""

from __future__ import annotations

import json
import math
import os
import statistics
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.checks.verdict import Status, Verdict

SAMPLES_GLOB = "samples-*.jsonl"

# Locust request name -> (request_type, metric name of harness.checks.metrics)
STEPS: dict[str, tuple[str, str]] = {
    "session_create": ("HTTP", "session_create_ms"),
    "connect": ("WS", "connect_ms"),
    "first_partial": ("WS", "first_partial_ms"),
    "final": ("WS", "final_latency_ms"),
    "finalize": ("WS", "finalize_final_ms"),
    "pipeline": ("WS", "pipeline_ms"),
}
PACING_METRIC = "pacing_error_ms"  # outside the metric convention: SLO files mark it custom = true
MAX_TIMELINE_BUCKETS = 40


# --- writing -----------------------------------------------------------------------------------
class SampleWriter:
    """Appends sample lines to ``<folder>/samples-<pid>.jsonl``; one write per batch, so a batch
    is either whole or, if the process is killed mid-write, a detectable broken last line.

    The file is opened on first write, so a process that forks (Locust ``--processes``) after
    creating the writer still gets one file per process.
    """

    def __init__(self, folder: Path | str) -> None:
        self.folder = Path(folder)
        self._pid: int | None = None
        self._fh: Any = None

    @property
    def path(self) -> Path:
        return self.folder / f"samples-{os.getpid()}.jsonl"

    def write(self, lines: Iterable[dict[str, Any]]) -> None:
        text = "".join(json.dumps(line, separators=(",", ":"), default=str) + "\n" for line in lines)
        if not text:
            return
        if self._pid != os.getpid():
            self.folder.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - kept open for the run
            self._pid = os.getpid()
        self._fh.write(text)
        self._fh.flush()

    def close(self) -> None:
        if self._fh is not None and self._pid == os.getpid():
            self._fh.close()
        self._fh = self._pid = None


# --- reading -----------------------------------------------------------------------------------
@dataclass
class LoadSamples:
    requests: list[dict[str, Any]] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)
    sessions: list[dict[str, Any]] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    bad_lines: list[str] = field(default_factory=list)  # "file:line: why"
    interrupted_requests: list[dict[str, Any]] = field(default_factory=list)  # not counted, see above

    def extend(self, other: LoadSamples) -> None:
        self.interrupted_requests += other.interrupted_requests
        self.requests += other.requests
        self.failures += other.failures
        self.sessions += other.sessions
        self.files += other.files
        self.bad_lines += other.bad_lines

    def values(self, name: str) -> list[float]:
        return [float(r["ms"]) for r in self.requests if r.get("name") == name]

    def window(self, t0: float, t1: float) -> LoadSamples:
        """Samples measured in ``[t0, t1)`` (sessions: those that ended in it)."""
        return LoadSamples(
            [r for r in self.requests if t0 <= r["t"] < t1],
            [f for f in self.failures if t0 <= f["t"] < t1],
            [s for s in self.sessions if t0 <= s["t1"] < t1],
            list(self.files),
        )

    @property
    def span(self) -> tuple[float, float] | None:
        times = [r["t"] for r in self.requests] + [f["t"] for f in self.failures]
        times += [s["t0"] for s in self.sessions] + [s["t1"] for s in self.sessions]
        return (min(times), max(times)) if times else None


_REQUIRED = {"request": ("t", "name", "ms"), "failure": ("t", "name", "error"), "session": ("t0", "t1", "status")}


def parse_lines(lines: Iterable[str], source: str = "<lines>") -> LoadSamples:
    out = LoadSamples(files=[source])
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            out.bad_lines.append(f"{source}:{n}: not JSON ({exc.msg}); a worker killed mid-write leaves one such line")
            continue
        kind = rec.get("kind") if isinstance(rec, dict) else None
        missing = [k for k in _REQUIRED.get(kind, ()) if k not in rec]
        if kind not in _REQUIRED or missing:
            out.bad_lines.append(f"{source}:{n}: " + (f"unknown kind {kind!r}" if kind not in _REQUIRED
                                                       else f"{kind} line without {missing}"))
            continue
        if kind == "request" and rec.get("interrupted"):
            out.interrupted_requests.append(rec)
            continue
        {"request": out.requests, "failure": out.failures, "session": out.sessions}[kind].append(rec)
    return out


def read_samples(folder: Path | str) -> LoadSamples:
    """Every ``samples-*.jsonl`` under ``folder`` (recursively: one subfolder per run or step)."""
    folder = Path(folder)
    out = LoadSamples()
    for path in sorted(folder.rglob(SAMPLES_GLOB)) if folder.is_dir() else []:
        with open(path, encoding="utf-8") as fh:
            out.extend(parse_lines(fh, str(path)))
    return out


# --- statistics --------------------------------------------------------------------------------
def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile of unsorted ``values`` (the same rule as ``harness.slo``)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(ordered) - 1e-9))
    return ordered[min(rank, len(ordered)) - 1]


def distribution(values: list[float]) -> dict[str, Any]:
    """count, min, p50, p90, p95, p99, max, mean: exact, over every sample."""
    if not values:
        return {"count": 0}
    return {
        "count": len(values), "min": round(min(values), 3),
        **{f"p{q}": round(percentile(values, q), 3) for q in (50, 90, 95, 99)},
        "max": round(max(values), 3), "mean": round(statistics.fmean(values), 3),
    }


def pacing_values(samples: LoadSamples) -> list[float]:
    """Every paced chunk's error, from sessions that were not interrupted (see ``request``)."""
    return [float(v) for s in samples.sessions if s.get("status") != "interrupted" for v in (s.get("pacing_ms") or [])]


def concurrency_curve(sessions: list[dict[str, Any]]) -> list[tuple[float, int]]:
    """(time, sessions open from then on) at every session start and end, in time order."""
    edges = sorted([(s["t0"], 1) for s in sessions] + [(s["t1"], -1) for s in sessions], key=lambda e: (e[0], e[1]))
    out, level = [], 0
    for t, d in edges:
        level += d
        out.append((t, level))
    return out


def peak_concurrency(sessions: list[dict[str, Any]]) -> int:
    return max((level for _, level in concurrency_curve(sessions)), default=0)


def _bucket_width(span_s: float, bucket_s: float | None) -> float:
    if bucket_s:
        return bucket_s
    return max(1.0, math.ceil(span_s / MAX_TIMELINE_BUCKETS))


def timeline(samples: LoadSamples, start: float | None = None, bucket_s: float | None = None) -> list[dict[str, Any]]:
    """Per time bucket: open sessions (peak), sessions started/ended, requests, failures, and the
    final latency and first-partial percentiles of the samples measured in it."""
    span = samples.span
    if span is None:
        return []
    t_start = span[0] if start is None else start
    width = _bucket_width(span[1] - t_start, bucket_s)
    n = max(1, math.ceil((span[1] - t_start) / width + 1e-9))
    curve = concurrency_curve(samples.sessions)
    rows = []
    level_before = 0
    ci = 0
    for b in range(n):
        lo, hi = t_start + b * width, t_start + (b + 1) * width
        peak = level_before
        while ci < len(curve) and curve[ci][0] < hi:
            level_before = curve[ci][1]
            peak = max(peak, level_before)
            ci += 1
        part = samples.window(lo, hi)
        finals = part.values("final")
        firsts = part.values("first_partial")
        rows.append({
            "t_s": round(b * width, 3),
            "open_sessions": peak,
            "sessions_started": sum(1 for s in samples.sessions if lo <= s["t0"] < hi),
            "sessions_ended": len(part.sessions),
            "requests": len(part.requests),
            "requests_per_s": round(len(part.requests) / width, 2),
            "failures": len(part.failures),
            "final_p50_ms": round(percentile(finals, 50), 1) if finals else None,
            "final_p95_ms": round(percentile(finals, 95), 1) if finals else None,
            "first_partial_p95_ms": round(percentile(firsts, 95), 1) if firsts else None,
        })
    return rows


def summarize(samples: LoadSamples, start: float | None = None, end: float | None = None,
              bucket_s: float | None = None) -> dict[str, Any]:
    """The exact figures of a load run: per step, sessions, failures, pacing, throughput, timeline."""
    span = samples.span
    t0 = start if start is not None else (span[0] if span else 0.0)
    t1 = end if end is not None else (span[1] if span else t0)
    duration = max(t1 - t0, 1e-9)
    statuses = Counter(s.get("status") for s in samples.sessions)
    errors = Counter(f"{f['name']}: {f['error']}" for f in samples.failures)
    audio_s = sum((s.get("audio_bytes") or 0) for s in samples.sessions) / 32_000
    return {
        "steps": {name: distribution(samples.values(name)) for name in STEPS},
        "sessions": {
            "total": len(samples.sessions), "ok": statuses.get("ok", 0), "failed": statuses.get("failed", 0),
            "interrupted": statuses.get("interrupted", 0), "peak_open": peak_concurrency(samples.sessions),
            "reconnects": sum(int(s.get("reconnects") or 0) for s in samples.sessions),
            "uncounted_samples": len(samples.interrupted_requests),
        },
        "failures": {"total": len(samples.failures),
                     "by_name": dict(Counter(f["name"] for f in samples.failures)),
                     "top": [{"error": e, "count": c} for e, c in errors.most_common(10)]},
        "words": {k: sum(int(s.get(k) or 0) for s in samples.sessions)
                  for k in ("lost_words", "duplicated_words", "lost_segments")},
        "pacing_ms": distribution(pacing_values(samples)),
        "throughput": {
            "duration_s": round(duration, 3),
            "requests_per_s": round(len(samples.requests) / duration, 3),
            "sessions_per_min": round(len(samples.sessions) / duration * 60, 3),
            "audio_s_per_s": round(audio_s / duration, 3),  # real-time streams kept up, on average
        },
        "timeline": timeline(samples, t0, bucket_s),
        "bad_lines": samples.bad_lines[:20],
        "sample_files": len(samples.files),
    }


# --- verdicts ----------------------------------------------------------------------------------
def verdicts(samples: LoadSamples, pacing_p99_limit_ms: float | None = None, who: str = "load") -> list[Verdict]:
    """Verdicts carrying every raw sample under the metric names SLO files judge.

    ``load.sessions`` fails on any failure (an errored session, lost or duplicated words) and is
    unknown when no session finished; ``load.latency`` only carries samples (SLOs judge them);
    ``load.pacing`` is unknown when the pacing error p99 exceeds ``pacing_p99_limit_ms``: the
    generator fell behind real time, so the latencies it measured cannot be trusted either way.
    """
    out = []
    judged = [s for s in samples.sessions if s.get("status") in ("ok", "failed")]
    word_metrics = {k: [int(s[k]) for s in judged if s.get(k) is not None]
                    for k in ("lost_words", "duplicated_words", "lost_segments")}
    metrics: dict[str, Any] = {"session_success": [1 if s["status"] == "ok" else 0 for s in judged], **word_metrics}
    evidence: dict[str, Any] = {"failures": [{k: f.get(k) for k in ("name", "session", "error", "t")}
                                             for f in samples.failures[:20]]}
    if samples.bad_lines:
        evidence["bad_lines"] = samples.bad_lines[:5]
    if not judged:
        out.append(Verdict("load.sessions", Status.UNKNOWN,
                           f"{who}: no session finished ({len(samples.sessions)} interrupted or none ran)",
                           metrics, evidence))
    elif samples.failures:
        by_name = Counter(f["name"] for f in samples.failures)
        first = samples.failures[0]
        out.append(Verdict("load.sessions", Status.FAIL,
                           f"{who}: {len(samples.failures)} failure(s) in {len(judged)} session(s) "
                           f"({', '.join(f'{n} {c}' for n, c in by_name.items())}); first: {first['name']} "
                           f"in session {first.get('session')}: {first['error']}", metrics, evidence))
    else:
        out.append(Verdict("load.sessions", Status.PASS, f"{who}: {len(judged)} session(s), 0 failures", metrics,
                           evidence if samples.bad_lines else {}))
    lat = {metric: samples.values(name) for name, (_, metric) in STEPS.items()}
    counts = ", ".join(f"{name} {len(lat[m])}" for name, (_, m) in STEPS.items())
    status = Status.PASS if any(lat.values()) else Status.UNKNOWN
    out.append(Verdict("load.latency", status, f"{who}: samples per step: {counts}", lat))
    pacing = pacing_values(samples)
    if not pacing:
        out.append(Verdict("load.pacing", Status.UNKNOWN, f"{who}: no paced audio chunk was measured",
                           {PACING_METRIC: []}))
    else:
        p99 = percentile(pacing, 99)
        text = f"pacing error p99 {p99:.2f} ms over {len(pacing)} chunk(s) (max {max(pacing):.2f} ms)"
        if pacing_p99_limit_ms is not None and p99 > pacing_p99_limit_ms:
            out.append(Verdict("load.pacing", Status.UNKNOWN,
                               f"{who}: {text} exceeds {pacing_p99_limit_ms:g} ms: the load generator could not "
                               "keep real time, so the latencies it measured include its own delay",
                               {PACING_METRIC: [round(v, 3) for v in pacing]}))
        else:
            out.append(Verdict("load.pacing", Status.PASS, f"{who}: {text}",
                               {PACING_METRIC: [round(v, 3) for v in pacing]}))
    return out


# --- capacity steps ----------------------------------------------------------------------------
@dataclass(frozen=True)
class StepCriteria:
    """When a capacity step counts as broken: final latency p95 over a limit, or any failure."""

    final_p95_ms: float = 500.0
    max_failures: int = 0
    min_finals: int = 5  # fewer final samples in a step: the step cannot be judged


def judge_step(samples: LoadSamples, criteria: StepCriteria) -> tuple[str, str, dict[str, Any]]:
    """("held" | "broke" | "unknown", why, figures) for the samples of one step's window."""
    finals = samples.values("final")
    pacing = pacing_values(samples)
    figures = {"finals": len(finals), "failures": len(samples.failures), "sessions": len(samples.sessions),
               "final_p95_ms": round(percentile(finals, 95), 1) if finals else None,
               # of the sessions that ended in the step: a high figure means the generator, not
               # the backend, may have been the limit
               "pacing_p99_ms": round(percentile(pacing, 99), 1) if pacing else None,
               "session_create_p95_ms": (round(percentile(samples.values("session_create"), 95), 1)
                                         if samples.values("session_create") else None)}
    if len(samples.failures) > criteria.max_failures:
        first = samples.failures[0]
        return "broke", f"{len(samples.failures)} failure(s), first: {first['name']}: {first['error']}", figures
    if len(finals) < criteria.min_finals:
        return "unknown", f"{len(finals)} final latency sample(s), need {criteria.min_finals}", figures
    p95 = percentile(finals, 95)
    if p95 > criteria.final_p95_ms:
        return "broke", f"final latency p95 {p95:.0f} ms > {criteria.final_p95_ms:g} ms", figures
    return "held", f"final latency p95 {p95:.0f} ms, 0 failures", figures

"""The report's sections as plain data (dicts and lists), ready for the Jinja template.

Keeping this apart from the template means every number shown is computed in Python, where it
can be tested, and the template only lays it out.
"""

from __future__ import annotations

import base64
import json
import re
import statistics
from typing import Any

from harness.checks import latency
from harness.checks.metrics import LATENCY_METRICS, METRICS, describe
from harness.checks.verdict import Status, Verdict, combine
from harness.history import History
from harness.report import charts
from harness.report.model import Item, RunData
from harness.results import ScenarioResult
from harness.slo import SLOResult, SLOSet, Samples, collect_samples, percentile

SEVERITY = {Status.FAIL: 0, Status.UNKNOWN: 1, Status.PASS: 2}
EVIDENCE_CHARS = 12_000
PASSING_EVIDENCE_CHARS = 400
MAX_WATERFALLS = 4
SCREENSHOT_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp"}
MAX_SCREENSHOT_BYTES = 3_000_000


def fmt(value: Any, digits: int = 1) -> str:
    """Numbers for people: thousands separated, few decimals; everything else as text."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return str(value)
        if abs(value) >= 100 or value == int(value):
            return f"{value:,.0f}"
        return f"{value:,.{digits + 1}f}" if abs(value) < 1 else f"{value:,.{digits}f}"
    return str(value)


# Unit suffixes of parameter names, longest first: ``rate_kb_s`` 16 -> "rate 16 kB/s".
_UNITS = (("_kb_s", "kB/s"), ("_ms", "ms"), ("_us", "µs"), ("_s", "s"), ("_bytes", "bytes"))


def param_text(value: Any) -> str:
    """A parameter value for people: objects as ``key value`` pairs with their units, lists joined;
    never a Python repr."""
    if isinstance(value, dict):
        return ", ".join(param_pair(k, v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(param_text(v) for v in value) or "none"
    return fmt(value)


def param_pair(key: str, value: Any) -> str:
    """``("rate_kb_s", 16)`` -> ``rate 16 kB/s``; ``("stream", "upstream")`` -> ``stream upstream``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        for suffix, unit in _UNITS:
            if key.endswith(suffix) and len(key) > len(suffix):
                return f"{key[: -len(suffix)].replace('_', ' ')} {fmt(value)} {unit}"
    return f"{key.replace('_', ' ')} {param_text(value)}"


def own_time_s(item: Item) -> float:
    """The scenario's own time. A scenario whose sessions ran side by side with others' (the chaos
    matrix starts every case at once and each test only collects its result) records its session's
    time as ``params.duration_s``; the test's own wall time would be the wait for the result."""
    own = item.params.get("duration_s")
    if isinstance(own, (int, float)) and not isinstance(own, bool):
        return float(own)
    return item.duration_s


def _json(value: Any) -> str:
    text = json.dumps(value, indent=2, default=str, sort_keys=False)
    return text if len(text) <= EVIDENCE_CHARS else text[:EVIDENCE_CHARS] + f"\n… ({len(text) - EVIDENCE_CHARS:,} more characters)"


# --- SLOs ----------------------------------------------------------------------------------------
def slo_rows(results: list[SLOResult]) -> list[dict[str, Any]]:
    rows = []
    for r in results:
        t = r.threshold
        unit = METRICS[t.metric].unit if t.metric in METRICS else ""
        rows.append({
            "metric": t.metric, "expression": t.expression, "status": r.status.value,
            "measured": fmt(r.measured, 3 if t.aggregate == "rate" else 1) + (f" {unit}" if unit == "ms" and r.measured is not None else ""),
            "samples": r.samples, "min_samples": t.min_samples,
            "budget": None if r.budget_used is None else f"{r.budget_used:.0%}",
            "budget_pct": None if r.budget_used is None else min(100.0, r.budget_used * 100),
            "message": r.message, "description": t.description or describe(t.metric),
        })
    return rows


# --- suites ------------------------------------------------------------------------------------
def _metric_summary(metrics: dict[str, Any]) -> str:
    parts = []
    for name, value in metrics.items():
        values = value if isinstance(value, list) else [value]
        nums = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if not nums:
            continue
        parts.append(f"{name} {fmt(float(nums[0]))}" if len(nums) == 1 else
                     f"{name} n={len(nums)} max {fmt(float(max(nums)))}")
    return "; ".join(parts)


def _evidence(v: Verdict) -> str:
    """A failing or unknown verdict's evidence in full (up to a cap); a passing one's only when short,
    so a run of thousands of passing sessions still makes a file a browser opens quickly."""
    if not v.evidence:
        return ""
    text = _json(v.evidence)
    return text if v.status is not Status.PASS or len(text) <= PASSING_EVIDENCE_CHARS else ""


def suites(data: RunData) -> list[dict[str, Any]]:
    groups: dict[str, list[Item]] = {}
    for item in data.items:
        groups.setdefault(item.suite, []).append(item)
    out = []
    for name, items in groups.items():
        rows = []
        for item in sorted(items, key=lambda i: (SEVERITY[i.status], i.name)):
            artifacts = item.result.artifacts if item.result else {}
            rows.append({
                "name": item.name, "status": item.status.value, "duration": fmt(own_time_s(item)),
                "messages": item.messages(), "error": item.error,
                "params": [(k, param_text(v)) for k, v in item.params.items()
                           if k != "duration_s" and v not in (None, "", [], {})],
                "verdicts": [{"name": v.name, "status": v.status.value, "message": v.message,
                              "metrics": _metric_summary(v.metrics),
                              "evidence": _evidence(v)} for v in item.verdicts],
                "artifacts": [{"label": k, "path": p} for k, p in artifacts.items()],
                "sessions": item.result.sessions if item.result else [],
            })
        counts = {s.value: sum(1 for i in items if i.status is s) for s in Status}
        out.append({"name": name, "status": worst([i.status for i in items]).value, "counts": counts, "rows": rows})
    return sorted(out, key=lambda s: (SEVERITY[Status(s["status"])], s["name"]))


def worst(statuses: list[Status]) -> Status:
    """fail over unknown over pass, as ``combine`` does for verdicts (nothing at all is unknown)."""
    return combine([Verdict("", s) for s in statuses])


# --- latency -------------------------------------------------------------------------------------
def latency_table(samples: Samples) -> list[dict[str, Any]]:
    rows = []
    for metric in list(LATENCY_METRICS) + ["partial_gap_ms", "recovery_ms", "added_latency_ms"]:
        values = samples.values.get(metric)
        if not values:
            continue
        rows.append({"metric": metric, "n": len(values), "p50": fmt(percentile(values, 50)),
                     "p95": fmt(percentile(values, 95)), "p99": fmt(percentile(values, 99)),
                     "max": fmt(max(values)), "definition": describe(metric)})
    return rows


def _targets(slos: SLOSet | None) -> dict[str, list[tuple[float, str]]]:
    out: dict[str, list[tuple[float, str]]] = {}
    for t in slos.thresholds if slos else []:
        if t.aggregate in ("p", "max", "avg", "med") and t.op in ("<", "<="):
            out.setdefault(t.metric, []).append((t.target, t.expression))
    return out


def run_t0(data: RunData) -> int | None:
    starts = [h.t0_ns for _, h in data.histories()]
    return min(starts) if starts else None


def windows(data: RunData, t0: int, end_default_ns: int | None = None) -> list[charts.Window]:
    out = []
    for w in data.fault_windows():
        end = w.end_ns if w.end_ns is not None else end_default_ns
        if end is None:
            continue
        label = f"{w.kind} {w.target}".strip()
        out.append(charts.Window((w.start_ns - t0) / 1e9, (end - t0) / 1e9, label))
    return out


def latency_charts(data: RunData, samples: Samples, slos: SLOSet | None) -> dict[str, str | None]:
    dist = charts.latency_distributions({m: samples.values.get(m, []) for m in LATENCY_METRICS}, _targets(slos))
    t0 = run_t0(data)
    over = None
    if t0 is not None:
        series: dict[str, list[tuple[float, float]]] = {m: [] for m in
                                                          ("final_latency_ms", "first_partial_ms", "session_create_ms", "connect_ms")}
        last = t0
        for _, h in data.histories():
            for s, _faulted in latency.final_latency_samples(h):
                series["final_latency_ms"].append(((s.t_ns - t0) / 1e9, s.ms))
            fp, _ = latency.first_partial_sample(h)
            if fp:
                series["first_partial_ms"].append(((fp.t_ns - t0) / 1e9, fp.ms))
            for s in latency.session_create_samples(h):
                series["session_create_ms"].append(((s.t_ns - t0) / 1e9, s.ms))
            for s in latency.connect_samples(h):
                series["connect_ms"].append(((s.t_ns - t0) / 1e9, s.ms))
            if h.records:
                last = max(last, h.records[-1].t_ns)
        over = charts.latency_over_time(series, windows(data, t0, last))
    return {"distributions": dist, "over_time": over}


# --- waterfalls ---------------------------------------------------------------------------------
_ID = re.compile(r"/[0-9a-fA-F-]{16,}|/s-[^/?]+")


def _short_path(path: str) -> str:
    """``/v1/sessions/<uuid>/finalize`` -> ``/v1/sessions/{id}/finalize``: ids only crowd a chart label."""
    return _ID.sub("/{id}", path.split("?", 1)[0])


def lanes(h: History) -> list[charts.Lane]:
    def s(t: int) -> float:
        return (t - h.t0_ns) / 1e9

    http = charts.Lane("HTTP", [], [], charts.PURPLE)
    for r in h.of_kind("http"):
        lat = float(r.data.get("latency_ms") or 0.0)
        http.spans.append((s(r.t_ns) - lat / 1000, s(r.t_ns)))
        http.points.append((s(r.t_ns), f"{r.data.get('method', '')} {_short_path(str(r.data.get('path', '')))} "
                                       f"{r.data.get('status')}"))
    connect = charts.Lane("connect", [], [], charts.TEAL)
    starts = {}
    for r in h.records:
        if r.kind == "connect":
            starts[r.data.get("attempt")] = r.t_ns
        elif r.kind == "connected" and r.data.get("attempt") in starts:
            connect.spans.append((s(starts[r.data.get("attempt")]), s(r.t_ns)))
        elif r.kind == "connect_failed":
            connect.points.append((s(r.t_ns), f"failed {r.data.get('status') or ''}".strip()))
    lanes = [http, connect, charts.Lane("audio sent", [(s(r.t_ns), "") for r in h.of_kind("audio_sent")], [], charts.BLUE)]
    events: dict[str, list[tuple[float, str]]] = {k: [] for k in ("ack", "partial", "final", "pipeline_event", "error", "closed")}
    for t, e in h.events():
        if e.type in events:
            label = ""
            if e.type == "final":
                label = f"#{e.segment_id}"  # type: ignore[union-attr]
            elif e.type == "error":
                label = e.code  # type: ignore[union-attr]
            elif e.type == "closed":
                label = f"close {e.code}"  # type: ignore[union-attr]
            elif e.type == "pipeline_event":
                label = e.name  # type: ignore[union-attr]
            events[e.type].append((s(t), label))
    pipeline = events["pipeline_event"]
    if len(pipeline) > 1:  # one label for the run of events: they arrive too close together to name each
        span_ms = (pipeline[-1][0] - pipeline[0][0]) * 1000
        pipeline = [(pipeline[0][0], f"{pipeline[0][1]} … {pipeline[-1][1]} ({len(pipeline)} in {span_ms:.0f} ms)")] + \
            [(x, "") for x, _ in pipeline[1:]]
    control = [(s(r.t_ns), str(r.data.get("message", ""))) for r in h.of_kind("control_sent")]
    return lanes + [
        charts.Lane("acks", [(x, "") for x, _ in events["ack"]], [], charts.MUTED),
        charts.Lane("partials", events["partial"], [], charts.GREEN),
        charts.Lane("finals", events["final"], [], charts.INK),
        charts.Lane("control", control, [], charts.ORANGE),
        charts.Lane("pipeline", pipeline, [], charts.PURPLE),
        charts.Lane("errors / close", events["error"] + events["closed"], [], charts.RED),
    ]


def _worst(data: RunData) -> list[tuple[ScenarioResult, History, str]]:
    scored = []
    for s, h in data.histories():
        finals = latency.final_latency_samples(h)
        worst = max((x.ms for x, _ in finals), default=0.0)
        status = s.final_status()
        reason = f"{status.value}" + (f", worst final latency {worst:.0f} ms" if finals else ", no finals")
        scored.append(((SEVERITY[status], -worst), s, h, reason))
    scored.sort(key=lambda x: x[0])
    return [(s, h, reason) for _, s, h, reason in scored[:MAX_WATERFALLS]]


def waterfalls(data: RunData) -> list[dict[str, Any]]:
    out = []
    for s, h, reason in _worst(data):
        end = h.records[-1].t_ns if h.records else h.t0_ns
        ws = [w for w in list(h.faults) + list(s.faults) if w.start_ns <= end]
        wins = []
        seen = set()
        for w in ws:
            key = (w.kind, w.start_ns, w.end_ns)
            if key in seen:
                continue
            seen.add(key)
            wins.append(charts.Window((w.start_ns - h.t0_ns) / 1e9, ((w.end_ns or end) - h.t0_ns) / 1e9, f"{w.kind} {w.target}".strip()))
        uri = charts.waterfall(lanes(h), wins)
        if uri:
            out.append({"session": h.session_id or "(no session id)", "scenario": f"{s.suite}/{s.scenario}",
                        "status": s.final_status().value, "reason": reason, "uri": uri,
                        "faults": [w.label for w in wins]})
    return out


# --- chaos ---------------------------------------------------------------------------------------
def _fault_label(params: dict[str, Any]) -> str:
    """``fault`` (a name or an object) plus ``fault_params`` when the scenario gives them."""
    fault = params.get("fault")
    extra = dict(params.get("fault_params") or {})
    if isinstance(fault, dict):
        extra = {**{k: v for k, v in fault.items() if k not in ("kind", "type", "name")}, **extra}
        fault = fault.get("kind") or fault.get("type") or fault.get("name") or "fault"
    rest = param_text(extra)
    return f"{fault} ({rest})" if rest else str(fault)


def _case_name(scenario: str) -> str:
    """``test_fault_matrix.py::test_fault[ws-close-1011]`` -> ``ws-close-1011``: the case is the news."""
    m = re.search(r"\[(.+)\]$", scenario)
    return m.group(1) if m else scenario.rsplit("::", 1)[-1]


def chaos_matrix(data: RunData) -> list[dict[str, Any]]:
    groups: dict[str, list[ScenarioResult]] = {}
    for s in data.scenarios:
        if s.params.get("fault") is not None:
            groups.setdefault(_fault_label(s.params), []).append(s)
    rows = []
    for label, results in sorted(groups.items()):
        samples = collect_samples([r.to_dict() for r in results]).values
        recov = samples.get("recovery_ms", [])
        added = samples.get("added_latency_ms", [])
        layers = sorted({str(r.params["layer"]) for r in results if r.params.get("layer")})
        rows.append({
            "fault": label,
            "scenarios": [r.scenario for r in results],
            "cases": [_case_name(r.scenario) for r in results],
            "layer": ", ".join(layers),
            "completeness": f"{min(samples['completeness']):.1%}" if samples.get("completeness") else "–",
            "lost": fmt(int(sum(samples["lost_words"]))) if samples.get("lost_words") else "–",
            "duplicated": fmt(int(sum(samples["duplicated_words"]))) if samples.get("duplicated_words") else "–",
            "recovery": f"{fmt(statistics.median(recov))} / {fmt(max(recov))}" if recov else "–",
            "added": fmt(statistics.median(added)) if added else "–",
            "status": worst([r.final_status() for r in results]).value,
        })
    return rows


# --- voice-agent STT clients (the relay suite's clients group) ----------------------------------------
CLIENT_ROW = "clients.row"  # harness.checks.clients.ROW (not imported: the report reads run directories)


def _delay(ms: Any) -> str:
    return "–" if ms is None else f"{ms / 1000:.2f} s"


def clients_table(data: RunData) -> list[dict[str, Any]]:
    """One row per client x fault scenario: recovered or not, words lost against the client's clean
    run, reconnect delay, attempts, the documented behaviour and any finding against it."""
    rows = []
    for s in data.scenarios:
        for v in s.verdicts:
            if v.name != CLIENT_ROW:
                continue
            m, e = v.metrics, v.evidence
            recovered = m.get("client_recovered")
            lost, base = m.get("client_words_lost"), m.get("client_baseline_words", m.get("client_expected_words"))
            rows.append({
                "client": e.get("client", "?"), "fault": e.get("fault", _case_name(s.scenario)),
                "recovered": "–" if recovered is None else ("yes" if recovered else "no"),
                "lost": "–" if lost is None else (f"{lost} of {base}" if base is not None else str(lost)),
                "doubled": fmt(m.get("client_words_doubled")) if m.get("client_words_doubled") is not None else "–",
                "delay": _delay(m.get("client_reconnect_delay_ms")),
                "attempts": fmt(m.get("client_attempts")) if m.get("client_attempts") is not None else "–",
                "documented": e.get("documented", ""), "findings": list(e.get("findings") or []),
                "status": s.final_status().value, "scenario": s.scenario,
                "measured": v.status.value,
            })
    return sorted(rows, key=lambda r: (r["client"], r["fault"] != "clean", r["fault"]))


# --- other record kinds ---------------------------------------------------------------------------
def _generic(rec: dict[str, Any]) -> dict[str, Any]:
    """Scalars as key/value pairs, lists of objects as tables, nested objects flattened one level."""
    skip = {"record", "verdicts", "artifacts"}
    scalars, tables = [], []
    for key, value in rec.items():
        if key in skip:
            continue
        if isinstance(value, dict):
            for k, v in value.items():
                if not isinstance(v, (dict, list)):
                    scalars.append((f"{key}.{k}", fmt(v)))
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            cols: list[str] = []
            for row in value:
                cols += [c for c in row if c not in cols and not isinstance(row[c], (dict, list))]
            tables.append({"title": key, "columns": cols, "rows": [[fmt(row.get(c)) for c in cols] for row in value[:200]]})
        elif not isinstance(value, list):
            scalars.append((key, fmt(value)))
        else:
            scalars.append((key, ", ".join(fmt(v) for v in value[:20])))
    return {"scalars": scalars, "tables": tables}


def load_section(data: RunData) -> list[dict[str, Any]]:
    out = []
    for rec in data.of_kind("load") + data.of_kind("soak"):
        body = _generic(rec)
        statuses = [v.get("status") for v in rec.get("verdicts") or []]
        status = "fail" if "fail" in statuses else "unknown" if "unknown" in statuses else ("pass" if statuses else None)
        status = status or rec.get("status")  # a scenario's load record: its verdicts are on the scenario
        if rec.get("timeline"):
            chart = charts.load_timeline(rec["timeline"])
        elif rec.get("rss"):
            chart = charts.soak_rss(rec["rss"], (rec.get("memory") or {}).get("warmup_s"))
        else:
            chart = None
        out.append({"kind": rec.get("record"), "name": rec.get("name") or rec.get("scenario") or rec.get("record"),
                    "status": status, "artifacts": [{"label": k, "path": p} for k, p in (rec.get("artifacts") or {}).items()],
                    "chart": chart, **body})
    return out


BENCH_STATS = ("median", "mean", "min", "max", "stddev", "iqr")


def benchmark_rows(data: RunData) -> list[dict[str, Any]]:
    """pytest-benchmark's ``stats`` are seconds: shown in ms; flat records are shown as given."""
    rows = []
    for rec in data.of_kind("benchmark"):
        stats = rec.get("stats") if isinstance(rec.get("stats"), dict) else None
        row = {"name": rec.get("name") or rec.get("fullname") or "?", "group": rec.get("group") or ""}
        if stats:
            for k in BENCH_STATS:
                row[k] = fmt(stats[k] * 1000, 2) if isinstance(stats.get(k), (int, float)) else "–"
            row["rounds"] = fmt(stats.get("rounds"))
            row["ops"] = fmt(stats.get("ops"))
        else:
            for k in BENCH_STATS:
                v = rec.get(f"{k}_ms", rec.get(k))
                row[k] = fmt(v, 2)
            row["rounds"] = fmt(rec.get("rounds"))
            row["ops"] = fmt(rec.get("ops"))
        shown = {"record", "name", "group", "stats", "fullname", "rounds", "ops", *BENCH_STATS,
                 *(f"{k}_ms" for k in BENCH_STATS)}
        extra = {k: v for k, v in rec.items() if k not in shown and not isinstance(v, (dict, list))}
        row["extra"] = ", ".join(f"{k}={fmt(v)}" for k, v in extra.items())
        rows.append(row)
    return rows


def screenshots(data: RunData) -> list[dict[str, Any]]:
    out = []
    for s in data.scenarios:
        for label, rel in s.artifacts.items():
            if not (label == "screenshot" or label.startswith("screenshot")):
                continue
            path = data.artifact(rel)
            mime = SCREENSHOT_TYPES.get(path.suffix.lower()) if path else None
            entry = {"scenario": f"{s.suite}/{s.scenario}", "label": label, "path": rel, "status": s.final_status().value,
                     "uri": None, "missing": None}
            if path is None or mime is None:
                entry["missing"] = "not found in the run directory" if path is None else f"not an image ({path.suffix})"
            elif path.stat().st_size > MAX_SCREENSHOT_BYTES:
                entry["missing"] = f"too large to inline ({path.stat().st_size:,} bytes)"
            else:
                entry["uri"] = f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode("ascii")
            out.append(entry)
    return out


def selftest(data: RunData) -> dict[str, Any] | None:
    records = data.of_kind("selftest")
    if not records:
        return None
    rows = []
    for r in records:
        failing = [f for f in r.get("failing") or [] if f.get("status") == "fail"]
        caught = bool(r.get("counted", r.get("caught")))
        symptom = ""
        if failing:
            msgs = failing[0].get("messages") or []
            symptom = msgs[0] if msgs else ""
        rows.append({
            "defect": r.get("defect", "?"),
            "expected": ", ".join(r.get("suites") or []) or r.get("expected_suite", ""),
            "caught": caught,
            "status": "pass" if caught else ("unknown" if r.get("harness_error") else "fail"),
            "by": [f"{f.get('suite')}/{f.get('scenario')}" for f in failing],
            "symptom": symptom,
            "note": r.get("harness_error") or (
                "the catching scenario also failed on the healthy server" if r.get("caught") and r.get("healthy_passed") is False
                else ""),
        })
    summary = (data.of_kind("selftest_summary") or [{}])[-1]
    return {"rows": rows, "caught": sum(1 for r in rows if r["caught"]), "total": len(rows),
            "skipped": summary.get("skipped") or {}}

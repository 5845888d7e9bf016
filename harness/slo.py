"""Service-level objectives as data: k6-style threshold expressions judged on raw samples.

An SLO file is TOML::

    description = "CI gate"

    [slo.final_latency_ms]              # a metric name of harness.checks.metrics
    thresholds = ["p(95)<500", "p(99)<=800"]
    min_samples = 20                    # fewer samples -> unknown (default 1)
    description = "why this target"

    [slo.pacing_error_ms]               # a name outside the convention needs custom = true
    custom = true
    thresholds = "p(99)<50"

Each expression is ``AGG OP NUMBER`` with AGG one of ``p(N)`` (0 < N <= 100), ``avg``, ``med``,
``min``, ``max``, ``rate``, ``count``, ``sum`` and OP one of ``<``, ``<=``, ``>``, ``>=``, ``==``,
``!=``. Every expression is one SLO with its own verdict.

Aggregates over every sample of the metric in the run (all verdicts' ``metrics``):

* ``p(N)``: exact nearest-rank percentile: the smallest sample with at least N% of samples at or
  below it (always a real sample; no interpolation, no histogram buckets);
* ``med``: the median (mean of the two middle samples for an even count); ``avg``: the mean;
* ``rate``: the share of non-zero samples (1/0 samples: the success rate);
* ``count``: how many samples are non-zero (occurrences); ``sum``: the total.

Error budget used (percentile and rate SLOs): the share of samples on the wrong side of the
target divided by the share the SLO allows: ``rate>0.98`` with 1% failures has used 50%;
``p(95)<500`` with 10% of samples at or over 500 has used 200%. Over 100% means failing.
"""

from __future__ import annotations

import json
import math
import operator
import re
import statistics
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.checks.metrics import METRICS
from harness.checks.verdict import Status
from harness.errors import UsageError
from harness.protocols.capabilities import check_names

SLO_DIR = Path(__file__).resolve().parent / "slo"
OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "==": operator.eq, "!=": operator.ne}
_EXPR = re.compile(
    r"^\s*(?P<agg>p\(\s*(?P<q>[0-9]+(?:\.[0-9]+)?)\s*\)|avg|med|min|max|rate|count|sum)"
    r"\s*(?P<op><=|>=|==|!=|<|>)\s*(?P<value>[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?)\s*$"
)
_TABLE_KEYS = {"thresholds", "min_samples", "description", "custom", "needs"}
_TOP_KEYS = {"description", "slo"}


class SLOFileError(UsageError, ValueError):
    """A bad SLO file or expression; the message names the file, the metric and what is wrong."""


@dataclass(frozen=True)
class Threshold:
    """One SLO: ``metric`` judged by ``expression`` (parsed into aggregate, operator, target)."""

    metric: str
    expression: str
    aggregate: str  # p | avg | med | min | max | rate | count | sum
    percentile: float | None
    op: str
    target: float
    min_samples: int = 1
    description: str = ""
    needs: tuple[str, ...] = ()  # capabilities of the target without which no scenario measures it

    @property
    def name(self) -> str:
        return f"{self.metric} {self.expression}"


@dataclass
class SLOSet:
    path: str
    thresholds: list[Threshold]
    description: str = ""


def parse_expression(expression: str, metric: str = "?", source: str = "<string>") -> tuple[str, float | None, str, float]:
    """``"p(95)<500"`` -> ``("p", 95.0, "<", 500.0)``; raises SLOFileError naming what is wrong."""
    if not isinstance(expression, str):
        raise SLOFileError(f"{source}: metric {metric!r}: threshold {expression!r} is not a string")
    m = _EXPR.match(expression)
    if not m:
        raise SLOFileError(
            f"{source}: metric {metric!r}: bad threshold expression {expression!r}; expected AGG OP NUMBER "
            f"with AGG one of p(N), avg, med, min, max, rate, count, sum and OP one of {', '.join(OPS)} "
            f"(e.g. 'p(95)<500', 'rate>0.98', 'sum==0')"
        )
    agg, q = m["agg"], None
    if agg.startswith("p("):
        q = float(m["q"])
        if not 0 < q <= 100:
            raise SLOFileError(f"{source}: metric {metric!r}: percentile in {expression!r} must be in (0, 100]")
        agg = "p"
    return agg, q, m["op"], float(m["value"])


def loads(text: str, source: str = "<string>") -> SLOSet:
    """Parse SLO TOML text; ``source`` names it in errors."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SLOFileError(f"{source}: not valid TOML: {exc}") from exc
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise SLOFileError(f"{source}: unknown top-level key(s) {sorted(unknown)}; expected 'description' and [slo.<metric>] tables")
    tables = data.get("slo")
    if not isinstance(tables, dict) or not tables:
        raise SLOFileError(f"{source}: no [slo.<metric>] table; nothing to judge")
    thresholds = []
    for metric, table in tables.items():
        if not isinstance(table, dict):
            raise SLOFileError(f"{source}: slo.{metric} must be a table with 'thresholds'")
        bad_keys = set(table) - _TABLE_KEYS
        if bad_keys:
            raise SLOFileError(f"{source}: metric {metric!r}: unknown key(s) {sorted(bad_keys)}; allowed: {sorted(_TABLE_KEYS)}")
        if metric not in METRICS and not table.get("custom", False):
            raise SLOFileError(
                f"{source}: unknown metric {metric!r}; known metrics: {', '.join(METRICS)} "
                f"(set custom = true for a metric outside the convention)"
            )
        exprs = table.get("thresholds")
        if isinstance(exprs, str):
            exprs = [exprs]
        if not exprs or not isinstance(exprs, list):
            raise SLOFileError(f"{source}: metric {metric!r}: 'thresholds' must be an expression or a non-empty list of them")
        min_samples = table.get("min_samples", 1)
        if not isinstance(min_samples, int) or isinstance(min_samples, bool) or min_samples < 0:
            raise SLOFileError(f"{source}: metric {metric!r}: min_samples must be a non-negative integer, not {min_samples!r}")
        needs = table.get("needs", [])
        if not isinstance(needs, list) or not all(isinstance(n, str) for n in needs):
            raise SLOFileError(f"{source}: metric {metric!r}: needs must be a list of capability names, not {needs!r}")
        try:
            check_names(needs, f"{source}: metric {metric!r}: needs")
        except ValueError as exc:
            raise SLOFileError(str(exc)) from None
        for expr in exprs:
            agg, q, op, target = parse_expression(expr, metric, source)
            thresholds.append(Threshold(metric, expr.replace(" ", ""), agg, q, op, target, min_samples,
                                        str(table.get("description", "")), tuple(needs)))
    return SLOSet(source, thresholds, str(data.get("description", "")))


def load(path: Path | str) -> SLOSet:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"SLO file {path} does not exist")
    return loads(path.read_text(encoding="utf-8"), str(path))


def default_slo_file(profile: str = "ci") -> Path:
    path = SLO_DIR / f"{profile}.toml"
    if not path.is_file():
        known = sorted(p.stem for p in SLO_DIR.glob("*.toml"))
        raise FileNotFoundError(f"no SLO file for profile {profile!r} ({path}); known profiles: {', '.join(known)}")
    return path


# --- samples ---------------------------------------------------------------------------------
@dataclass
class Samples:
    """Every numeric sample per metric name, and the values that could not be used (with where from)."""

    values: dict[str, list[float]] = field(default_factory=dict)
    rejected: dict[str, list[str]] = field(default_factory=dict)

    def add(self, name: str, value: Any, origin: str) -> None:
        items = value if isinstance(value, (list, tuple)) else [value]
        for item in items:
            if item is None:
                continue
            if isinstance(item, bool):
                item = int(item)
            if isinstance(item, (int, float)) and math.isfinite(item):
                self.values.setdefault(name, []).append(float(item))
            else:
                self.rejected.setdefault(name, []).append(f"{item!r} from {origin}")


def collect_samples(records: Iterable[dict[str, Any]]) -> Samples:
    """Gather metric samples from every record that carries ``verdicts`` (scenario, load …)."""
    samples = Samples()
    for rec in records:
        where = "/".join(str(rec.get(k)) for k in ("suite", "scenario") if rec.get(k)) or str(rec.get("record"))
        for v in rec.get("verdicts") or []:
            for name, value in (v.get("metrics") or {}).items():
                samples.add(name, value, f"{where} {v.get('name', '?')}")
    return samples


# --- judging ---------------------------------------------------------------------------------
def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile: the smallest sample with at least ``q``% of samples <= it."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(ordered) - 1e-9))
    return ordered[rank - 1]


def aggregate(t: Threshold, values: list[float]) -> float:
    if t.aggregate == "p":
        return percentile(values, t.percentile or 100.0)
    if t.aggregate == "avg":
        return statistics.fmean(values)
    if t.aggregate == "med":
        return float(statistics.median(values))
    if t.aggregate == "min":
        return min(values)
    if t.aggregate == "max":
        return max(values)
    if t.aggregate == "rate":
        return sum(1 for v in values if v != 0) / len(values)
    if t.aggregate == "count":
        return float(sum(1 for v in values if v != 0))
    if t.aggregate == "sum":
        return float(sum(values))
    raise ValueError(f"unknown aggregate {t.aggregate!r}")


def error_budget_used(t: Threshold, values: list[float]) -> float | None:
    """Share of samples on the wrong side / share allowed (1.0 = the whole budget), or None."""
    if not values or t.op in ("==", "!="):
        return None
    n = len(values)
    if t.aggregate == "p":
        q = (t.percentile or 100.0) / 100.0
        bad = sum(1 for v in values if not OPS[t.op](v, t.target)) / n
        allowed = 1.0 - q if t.op in ("<", "<=") else q
    elif t.aggregate == "rate":
        rate = sum(1 for v in values if v != 0) / n
        bad, allowed = (1.0 - rate, 1.0 - t.target) if t.op in (">", ">=") else (rate, t.target)
    else:
        return None
    if allowed <= 0:
        return 0.0 if bad == 0 else None
    return bad / allowed


@dataclass
class SLOResult:
    threshold: Threshold
    status: Status
    measured: float | None
    samples: int
    budget_used: float | None
    message: str

    @property
    def name(self) -> str:
        return self.threshold.name

    def to_dict(self) -> dict[str, Any]:
        t = self.threshold
        return {
            "name": t.name, "metric": t.metric, "expression": t.expression, "target": t.target,
            "status": self.status.value, "measured": self.measured, "samples": self.samples,
            "min_samples": t.min_samples, "error_budget_used": self.budget_used, "message": self.message,
            "description": t.description,
        }


def _fmt(x: float) -> str:
    return f"{x:.4g}" if abs(x) < 1000 else f"{x:.0f}"


def judge(t: Threshold, samples: Samples) -> SLOResult:
    values = samples.values.get(t.metric, [])
    rejected = samples.rejected.get(t.metric, [])
    n = len(values)
    measured = aggregate(t, values) if values else None
    budget = error_budget_used(t, values)
    if rejected:
        return SLOResult(t, Status.UNKNOWN, measured, n, budget,
                         f"{t.name}: {len(rejected)} non-numeric sample(s), e.g. {rejected[0]}")
    if n < max(t.min_samples, 1):
        return SLOResult(t, Status.UNKNOWN, measured, n, budget,
                         f"{t.name}: {n} sample(s), need at least {max(t.min_samples, 1)}")
    assert measured is not None
    ok = OPS[t.op](measured, t.target)
    budget_text = f", error budget used {budget:.0%}" if budget is not None else ""
    text = f"measured {_fmt(measured)} over {n} sample(s){budget_text}"
    if ok:
        return SLOResult(t, Status.PASS, measured, n, budget, f"{t.name}: {text}")
    return SLOResult(t, Status.FAIL, measured, n, budget, f"{t.name} not met: {text}")


def evaluate(slos: SLOSet, samples: Samples) -> list[SLOResult]:
    return [judge(t, samples) for t in slos.thresholds]


def resolve_slo_file(run_path: Path | str, slo_file: Path | str | None = None, profile: str | None = None) -> Path:
    """The SLO file for a run: the one given, else run.json's ``slo_file``, else the profile's."""
    if slo_file:
        return Path(slo_file)
    info_path = Path(run_path) / "run.json"
    info = json.loads(info_path.read_text(encoding="utf-8")) if info_path.is_file() else {}
    if info.get("slo_file"):
        return Path(info["slo_file"])
    return default_slo_file(profile or info.get("profile") or "ci")


def evaluate_run(run_path: Path | str, slo_file: Path | str | None = None, profile: str | None = None
                 ) -> tuple[list[SLOResult], Path]:
    """Judge a run directory's samples; returns the results and the SLO file used."""
    from harness.results import RunDir

    path = resolve_slo_file(run_path, slo_file, profile)
    slos = applicable(load(path), run_capabilities(run_path))
    return evaluate(slos, collect_samples(RunDir(run_path).records())), path


def run_capabilities(run_path: Path | str) -> frozenset[str] | None:
    """The target's capabilities that run.json records (None for a run that did not record them)."""
    info_path = Path(run_path) / "run.json"
    info = json.loads(info_path.read_text(encoding="utf-8")) if info_path.is_file() else {}
    caps = info.get("capabilities")
    return frozenset(caps) if isinstance(caps, list) else None


def applicable(slos: SLOSet, capabilities: frozenset[str] | None) -> SLOSet:
    """The SLOs a target with ``capabilities`` can be judged by: one whose ``needs`` it lacks is
    measured by no scenario that runs there (a protocol without a session step has no
    session-creation time), so it is left out rather than left ``unknown`` forever."""
    if capabilities is None:
        return slos
    return SLOSet(slos.path, [t for t in slos.thresholds if set(t.needs) <= capabilities], slos.description)


def not_applicable(slos: SLOSet, capabilities: frozenset[str] | None) -> list[tuple[Threshold, list[str]]]:
    """(threshold, the capabilities it lacks) of every SLO :func:`applicable` leaves out."""
    if capabilities is None:
        return []
    return [(t, [n for n in t.needs if n not in capabilities]) for t in slos.thresholds if not set(t.needs) <= capabilities]

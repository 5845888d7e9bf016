"""What changed against a baseline run: scenarios that flipped, SLO measurements that moved.

The baseline is judged again with the current run's SLO file, so the two columns compare like
with like even when the baseline was rendered with another one.
"""

from __future__ import annotations

from typing import Any

from harness.report.model import RunData
from harness.slo import SLOResult, SLOSet, collect_samples, evaluate


def diff(current: RunData, baseline: RunData, slo_results: list[SLOResult], slos: SLOSet | None) -> dict[str, Any]:
    before = {i.key: i.status.value for i in baseline.items}
    after = {i.key: i.status.value for i in current.items}
    flipped = [{"scenario": k, "before": before[k], "after": after[k]} for k in after if k in before and before[k] != after[k]]
    new = [{"scenario": k, "status": after[k]} for k in after if k not in before]
    gone = [{"scenario": k, "status": before[k]} for k in before if k not in after]
    slo_rows = []
    if slos is not None:
        old = {r.name: r for r in evaluate(slos, collect_samples(baseline.records))}
        for r in slo_results:
            b = old.get(r.name)
            delta = None
            if b is not None and b.measured is not None and r.measured is not None:
                delta = r.measured - b.measured
            direction = "same"
            if delta:
                lower_is_better = r.threshold.op in ("<", "<=") or (r.threshold.op == "==" and r.threshold.target == 0)
                direction = "better" if (delta < 0) == lower_is_better else "worse"
            slo_rows.append({
                "name": r.name,
                "before": b.status.value if b else None, "after": r.status.value,
                "before_measured": b.measured if b else None, "after_measured": r.measured,
                "delta": delta, "direction": direction,
                "delta_pct": (delta / b.measured) if delta is not None and b and b.measured else None,
                "before_samples": b.samples if b else 0, "after_samples": r.samples,
            })
    return {
        "baseline": str(baseline.path),
        "baseline_run": baseline.info.get("started_at") or baseline.path.name,
        "flipped": flipped,
        "new": new,
        "gone": gone,
        "slo": slo_rows,
        "worse": [f["scenario"] for f in flipped if f["after"] != "pass"],
        "better": [f["scenario"] for f in flipped if f["after"] == "pass"],
    }

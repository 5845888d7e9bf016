"""The report's load section draws the load timeline and the soak memory from their records."""

from __future__ import annotations

from harness.report.render import render
from harness.results import RunDir


def test_load_and_soak_records_are_charted(tmp_path):
    run = RunDir.create(tmp_path / "run")
    timeline = [{"t_s": float(t), "open_sessions": min(t, 5), "requests_per_s": 10.0, "failures": int(t == 3),
                 "final_p50_ms": 3.0, "final_p95_ms": 200.0, "first_partial_p95_ms": 150.0} for t in range(10)]
    run.append_record({"record": "load", "name": "headless: 5 users", "status": "pass", "timeline": timeline,
                       "sessions": {"total": 12, "ok": 12}, "verdicts": [
                           {"name": "load.sessions", "status": "pass", "message": "12 sessions", "metrics": {},
                            "evidence": {}}]})
    run.append_record({"record": "soak", "name": "soak: 6 users", "status": "fail",
                       "memory": {"warmup_s": 20.0, "slope_mb_per_min": 40.5},
                       "rss": [{"t_s": 2.0 * i, "rss_mb": 60 + i} for i in range(30)]})
    html = render(run.path, slo_file=None).html.read_text()
    assert 'alt="load over time"' in html and 'alt="soak over time"' in html
    assert "memory.slope_mb_per_min" in html


def test_the_load_suite_and_harness_load_share_their_slos():
    from pathlib import Path

    from harness.slo import load

    root = Path(__file__).resolve().parents[2]
    suite, cli = load(root / "scenarios/load/slo.toml"), load(root / "harness/load/slo.toml")
    assert [(t.metric, t.expression, t.min_samples) for t in suite.thresholds] == \
        [(t.metric, t.expression, t.min_samples) for t in cli.thresholds]

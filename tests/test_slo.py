"""SLO files: parsing, each operator and aggregate, unknown on too few samples, error budgets, bad files."""

import json
from pathlib import Path

import pytest

from harness import slo
from harness.checks.verdict import Status
from harness.results import RunDir, ScenarioResult
from harness.checks.verdict import Verdict


def one(expr, metric="final_latency_ms", min_samples=1):
    return slo.loads(f'[slo.{metric}]\nthresholds = ["{expr}"]\nmin_samples = {min_samples}\n').thresholds[0]


def samples(metric="final_latency_ms", values=()):
    s = slo.Samples()
    s.add(metric, list(values), "test")
    return s


def test_parse_expression_forms():
    assert slo.parse_expression("p(95)<500") == ("p", 95.0, "<", 500.0)
    assert slo.parse_expression(" p( 99.9 ) <= 8e2 ") == ("p", 99.9, "<=", 800.0)
    assert slo.parse_expression("rate>0.98") == ("rate", None, ">", 0.98)
    assert slo.parse_expression("sum==0") == ("sum", None, "==", 0.0)
    assert slo.parse_expression("min>=.99") == ("min", None, ">=", 0.99)


@pytest.mark.parametrize("bad", ["p95<500", "p(95)=<500", "avg<", "mean<3", "p(0)<1", "p(101)<1", "rate>>1", "count==x"])
def test_bad_expressions_name_file_metric_and_expression(bad):
    with pytest.raises(slo.SLOFileError) as err:
        slo.loads(f'[slo.final_latency_ms]\nthresholds = ["{bad}"]\n', "my.toml")
    text = str(err.value)
    assert "my.toml" in text and "final_latency_ms" in text and bad in text


@pytest.mark.parametrize("body, fragment", [
    ("[slo.final_latency]\nthresholds = ['p(95)<1']\n", "unknown metric 'final_latency'"),
    ("[slo.final_latency_ms]\nthreshold = 'p(95)<1'\n", "unknown key(s) ['threshold']"),
    ("[slo.final_latency_ms]\nthresholds = []\n", "'thresholds' must be"),
    ("[slo.final_latency_ms]\nthresholds = 'p(95)<1'\nmin_samples = -2\n", "min_samples must be"),
    ("description = 'x'\n", "no [slo.<metric>] table"),
    ("[slo.final_latency_ms\n", "not valid TOML"),
    ("[thresholds]\nx = 1\n", "unknown top-level key(s) ['thresholds']"),
])
def test_bad_files(body, fragment):
    with pytest.raises(slo.SLOFileError, match="bad.toml") as err:
        slo.loads(body, "bad.toml")
    assert fragment in str(err.value)


def test_custom_metric_allowed_when_declared():
    s = slo.loads("[slo.pacing_error_ms]\ncustom = true\nthresholds = 'p(99)<50'\n")
    assert s.thresholds[0].metric == "pacing_error_ms"


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.toml"):
        slo.load(tmp_path / "nope.toml")


def test_default_files_hold_the_required_slos():
    ci = {t.name for t in slo.load(slo.default_slo_file("ci")).thresholds}
    assert {"session_create_ms p(95)<2000", "final_latency_ms p(95)<500", "session_success rate>0.98",
            "lost_words sum==0", "duplicated_words sum==0"} <= ci
    nightly = {t.name for t in slo.load(slo.default_slo_file("nightly")).thresholds}
    assert {"session_create_ms p(95)<2000", "final_latency_ms p(95)<500", "session_success rate>0.99",
            "lost_words sum==0", "duplicated_words sum==0"} <= nightly
    with pytest.raises(FileNotFoundError, match="known profiles"):
        slo.default_slo_file("weekly")


def test_make_tests_integrity_slos_are_the_ci_gates_without_latency():
    ci = {t.metric: t.expression for t in slo.load(slo.default_slo_file("ci")).thresholds}
    integrity = slo.load(Path(slo.__file__).parent / "slo" / "ci-integrity.toml").thresholds
    assert integrity and all(ci.get(t.metric) == t.expression for t in integrity)
    assert not any(t.metric.endswith("_ms") for t in integrity)


def test_nearest_rank_percentile_is_a_real_sample():
    values = list(range(1, 101))  # 1..100
    assert slo.percentile(values, 95) == 95
    assert slo.percentile(values, 100) == 100
    assert slo.percentile([10, 20, 30], 50) == 20
    assert slo.percentile([10, 20, 30, 40], 50) == 20
    assert slo.percentile([7], 99) == 7


@pytest.mark.parametrize("expr, values, status", [
    ("p(95)<500", [100] * 19 + [900], Status.PASS),      # 95th sample of 20 is 100
    ("p(95)<500", [100] * 18 + [900] * 2, Status.FAIL),
    ("p(99)<=100", [100] * 10, Status.PASS),
    ("avg<200", [100, 300], Status.FAIL),                 # avg 200 is not < 200
    ("avg<=200", [100, 300], Status.PASS),
    ("med<150", [100, 120, 400], Status.PASS),
    ("med<110", [100, 120, 400, 500], Status.FAIL),       # even count: (120 + 400) / 2
    ("min>=0.99", [1.0, 0.995], Status.PASS),
    ("min>=0.99", [1.0, 0.9], Status.FAIL),
    ("max<1000", [999], Status.PASS),
    ("max<1000", [1000], Status.FAIL),
    ("rate>0.98", [1] * 99 + [0], Status.PASS),
    ("rate>0.98", [1] * 49 + [0], Status.FAIL),
    ("count==0", [0, 0, 0], Status.PASS),
    ("count==0", [0, 2, 0], Status.FAIL),
    ("sum==0", [0, 0], Status.PASS),
    ("sum!=0", [0, 0], Status.FAIL),
    ("sum>3", [1, 1, 2], Status.PASS),
])
def test_each_operator_and_aggregate(expr, values, status):
    metric = "session_success" if expr.startswith("rate") else "final_latency_ms"
    result = slo.judge(one(expr, metric), samples(metric, values))
    assert result.status is status, result.message


def test_too_few_samples_is_unknown_with_the_measurement():
    result = slo.judge(one("p(95)<500", min_samples=5), samples(values=[1, 2, 3]))
    assert result.status is Status.UNKNOWN and "3 sample(s), need at least 5" in result.message
    assert result.measured == 3
    assert slo.judge(one("sum==0", "lost_words"), samples("lost_words", [])).status is Status.UNKNOWN


def test_non_numeric_samples_make_the_slo_unknown():
    s = samples(values=[1.0])
    s.add("final_latency_ms", "N/A", "conformance/x latency.final")
    result = slo.judge(one("p(95)<500"), s)
    assert result.status is Status.UNKNOWN and "'N/A' from conformance/x" in result.message


def test_error_budget_math():
    rate = one("rate>0.98", "session_success")
    assert slo.error_budget_used(rate, [1] * 99 + [0]) == pytest.approx(0.5)  # 1% of a 2% budget
    assert slo.error_budget_used(one("rate<0.1", "session_success"), [1] * 5 + [0] * 95) == pytest.approx(0.5)
    p95 = one("p(95)<500")
    assert slo.error_budget_used(p95, [100] * 90 + [600] * 10) == pytest.approx(2.0)
    assert slo.error_budget_used(p95, [100] * 100) == 0.0
    assert slo.error_budget_used(one("p(5)>100"), [50] + [200] * 99) == pytest.approx(0.2)
    assert slo.error_budget_used(one("avg<1"), [0.5]) is None
    assert slo.error_budget_used(one("p(100)<5"), [1, 2]) == 0.0
    assert slo.error_budget_used(one("p(100)<5"), [1, 9]) is None
    result = slo.judge(rate, samples("session_success", [1] * 99 + [0]))
    assert "error budget used 50%" in result.message


def test_budget_over_100_percent_agrees_with_failing():
    t = one("p(95)<500")
    for bad in range(0, 8):
        values = [100] * (40 - bad) + [600] * bad
        result = slo.judge(t, samples(values=values))
        assert (result.status is Status.FAIL) == (result.budget_used > 1.0 + 1e-9), (bad, result.message)


def test_collect_and_evaluate_a_run(tmp_path):
    run = RunDir.create(tmp_path / "run")
    run.add_result(ScenarioResult("conformance", "a", [Verdict("latency.final", Status.PASS, metrics={"final_latency_ms": [100, 200]}),
                                                       Verdict("session.success", Status.PASS, metrics={"session_success": [1]})]))
    run.add_result(ScenarioResult("chaos", "b", [Verdict("integrity.completeness", Status.FAIL, metrics={"lost_words": 2, "completeness": 0.9})]))
    run.append_record({"record": "load", "verdicts": [{"name": "load", "status": "pass", "metrics": {"session_create_ms": [30.0] * 4}}]})
    s = slo.collect_samples(run.records())
    assert s.values["final_latency_ms"] == [100, 200] and s.values["lost_words"] == [2] and len(s.values["session_create_ms"]) == 4
    f = tmp_path / "mine.toml"
    f.write_text("[slo.lost_words]\nthresholds = ['sum==0']\n[slo.final_latency_ms]\nthresholds = ['p(95)<500']\n")
    results, path = slo.evaluate_run(run.path, f)
    assert path == f and [r.status for r in results] == [Status.FAIL, Status.PASS]
    assert results[0].to_dict()["measured"] == 2
    run.write_run_info({"slo_file": str(f)})
    assert slo.resolve_slo_file(run.path) == f
    (run.path / "run.json").write_text(json.dumps({"profile": "nightly"}))
    assert slo.resolve_slo_file(run.path).name == "nightly.toml"


from hypothesis import given, settings, strategies as st  # noqa: E402


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=1000), min_size=1, max_size=300),
       st.sampled_from([50.0, 90.0, 95.0, 99.0, 99.9]), st.integers(min_value=1, max_value=1000))
def test_percentile_verdict_and_budget_always_agree(values, q, target):
    t = slo.Threshold("final_latency_ms", f"p({q})<{target}", "p", q, "<", float(target))
    result = slo.judge(t, samples(values=values))
    assert (result.status is Status.PASS) == (result.budget_used <= 1.0 + 1e-9)
    assert result.measured in values


def test_an_slo_the_target_cannot_be_measured_by_is_left_out_by_capability():
    from harness import slo as slo_mod

    slos = slo_mod.loads('[slo.session_create_ms]\nthresholds = ["p(95)<2000"]\nneeds = ["session_api"]\n'
                         '[slo.connect_ms]\nthresholds = ["p(95)<1000"]\n')
    kept = slo_mod.applicable(slos, frozenset({"keepalive"}))
    assert [t.metric for t in kept.thresholds] == ["connect_ms"]
    assert [(t.metric, lacking) for t, lacking in slo_mod.not_applicable(slos, frozenset({"keepalive"}))] == [
        ("session_create_ms", ["session_api"])]
    assert len(slo_mod.applicable(slos, frozenset({"session_api"})).thresholds) == 2
    assert len(slo_mod.applicable(slos, None).thresholds) == 2  # a run that recorded no capabilities


def test_an_unknown_capability_in_needs_is_refused():
    import pytest as _pytest

    from harness import slo as slo_mod

    with _pytest.raises(slo_mod.SLOFileError, match="unknown capability 'telepathy'"):
        slo_mod.loads('[slo.connect_ms]\nthresholds = ["p(95)<1000"]\nneeds = ["telepathy"]\n', "x.toml")

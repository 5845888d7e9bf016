"""The plugin writes every scenario into the run directory and never lets a bad verdict pass."""

from __future__ import annotations

import json

import pytest

pytest_plugins = ["pytester"]

SCENARIOS = '''
from harness.checks.verdict import Verdict, Status

def test_ok(scenario):
    h = scenario.history(fixture_id="meeting-01")
    h.session_id = "s-ok"
    scenario.check(Verdict("demo.ok", Status.PASS, "fine", metrics={"session_create_ms": [12.0]}))
    scenario.verify()

def test_failed(scenario):
    scenario.check(Verdict("integrity.lost", Status.FAIL, "lost word 'jones' in segment 2"))
    scenario.verify()

def test_unknown(scenario):
    scenario.check(Verdict("latency.final", Status.UNKNOWN, "too few samples"))
    scenario.verify()

def test_forgot_verify(scenario):
    scenario.check(Verdict("integrity.dup", Status.FAIL, "doubled 'the'"))

def test_harness_error(scenario):
    raise RuntimeError("connection refused")

def test_no_verdict(scenario):
    scenario.verify()
'''


@pytest.fixture
def outcome(pytester: pytest.Pytester):
    pytester.makepyfile(**{"scenarios/demo/test_demo.py": SCENARIOS})
    run_dir = pytester.path / "run"
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--run-dir", str(run_dir), "scenarios")
    records = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    return result, {r["scenario"].split("::")[-1]: r for r in records}, run_dir


def test_each_scenario_becomes_one_record(outcome):
    _, records, _ = outcome
    assert sorted(records) == sorted(
        ["test_ok", "test_failed", "test_unknown", "test_forgot_verify", "test_harness_error", "test_no_verdict"]
    )
    assert all(r["suite"] == "demo" for r in records.values())


def test_statuses_are_never_optimistic(outcome):
    result, records, _ = outcome
    assert records["test_ok"]["status"] == "pass"
    assert records["test_failed"]["status"] == "fail"
    assert records["test_unknown"]["status"] == "unknown"
    assert records["test_forgot_verify"]["status"] == "fail"
    assert records["test_harness_error"]["status"] == "unknown"
    assert "connection refused" in records["test_harness_error"]["error"]
    assert records["test_no_verdict"]["status"] == "unknown"
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) == 2  # test_ok, and test_forgot_verify's call phase
    assert outcomes.get("failed", 0) == 4
    assert outcomes.get("errors", 0) == 1  # test_forgot_verify fails in teardown


def test_histories_are_saved_and_referenced(outcome):
    _, records, run_dir = outcome
    rec = records["test_ok"]
    assert rec["sessions"] == ["s-ok"]
    saved = json.loads((run_dir / rec["histories"][0]).read_text())
    assert saved["session_id"] == "s-ok"
    assert saved["meta"]["fixture_id"] == "meeting-01"


def test_remote_target_refused_without_allow_remote(pytester: pytest.Pytester):
    pytester.makepyfile(test_x="def test_x():\n    pass\n")
    result = pytester.runpytest("--target", "http://203.0.113.7:8700", "--api-key", "k")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*not a loopback address*--allow-remote*"])


def test_defect_with_external_target_is_refused(pytester: pytest.Pytester):
    pytester.makepyfile(test_x="def test_x():\n    pass\n")
    result = pytester.runpytest("--target", "http://127.0.0.1:9", "--api-key", "k", "--defect", "no-resume")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--defect*embedded reference server*"])

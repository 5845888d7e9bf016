"""The self-test's machinery: planning, marker selection, catch accounting and its records.

The suite here is a fake ``conformance`` folder whose scenarios read ``--defect`` from the harness
options instead of talking to a server (a stand-in backend, so the accounting is tested in
seconds); the real catches are what ``harness run --suite selftest`` measures.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from harness import cli, selftest
from harness.results import RunDir
from harness.runner import PytestOptions

FAKE_CONFORMANCE = '''
import pytest
from harness.checks.verdict import Status, Verdict

def judge(scenario, broken, message):
    scenario.check(Verdict("fake", Status.FAIL if broken else Status.PASS, message if broken else "ok"))
    scenario.verify()

@pytest.mark.catches("health-lies")
def test_health(scenario, harness_options):
    judge(scenario, "health-lies" in harness_options.defects, "active_connections stayed at 3 after every close")

@pytest.mark.catches("pipeline-event-missing")
def test_events(scenario, harness_options):
    judge(scenario, "pipeline-event-missing" in harness_options.defects,
          "pipeline event dashboard_refresh never arrived for session s-1")

@pytest.mark.catches("zero-segment-crash")
def test_blind(scenario, harness_options):
    judge(scenario, False, "")  # claims to catch it, never does

def test_untagged(scenario, harness_options):
    open("untagged-ran", "a").close()
    judge(scenario, False, "")
'''


@pytest.fixture
def root(tmp_path: Path, monkeypatch) -> Path:
    root = tmp_path / "scenarios"
    (root / "conformance").mkdir(parents=True)
    (root / "conformance" / "test_fake.py").write_text(textwrap.dedent(FAKE_CONFORMANCE))
    (root / "chaos").mkdir()
    monkeypatch.chdir(tmp_path)
    return root


def test_plan_runs_defects_whose_suites_have_tests(root):
    runs, skipped = selftest.plan(root, "ci")
    assert runs["health-lies"] == ["conformance"]
    assert runs["slow-session-create"] == ["conformance"]  # load has no tests here
    assert "no-resume" not in runs and "no tests yet in chaos" in skipped["no-resume"]
    assert set(runs) | set(skipped) == set(selftest.DEFECT_SUITES)
    runs, _ = selftest.plan(root, "ci", only=("health-lies",))
    assert list(runs) == ["health-lies"]
    with pytest.raises(cli.HarnessError, match="unknown defect 'no-such'"):
        selftest.plan(root, "ci", only=("no-such",))


def test_nightly_only_suites_are_skipped_in_ci_unless_a_short_scenario_proves_the_defect(tmp_path):
    for suite in ("load", "bench"):
        (tmp_path / suite).mkdir()
        (tmp_path / suite / f"test_{suite}.py").write_text("def test_x():\n    pass\n")
    runs, skipped = selftest.plan(tmp_path, "ci", only=("stream-gap", "unbounded-transcript"))
    assert "stream-gap" not in runs and "nightly profile only" in skipped["stream-gap"]  # bench stays nightly
    assert runs == {"unbounded-transcript": ["load"]}  # the short soak runs in CI
    runs, _ = selftest.plan(tmp_path, "nightly", only=("stream-gap", "unbounded-transcript"))
    assert runs == {"stream-gap": ["bench"], "unbounded-transcript": ["load"]}


def test_selftest_counts_catches_and_misses(root, tmp_path, capsys):
    run = RunDir.create(tmp_path / "run")
    summary = selftest.run_selftest(run, root, PytestOptions(), only=("pipeline-event-missing", "zero-segment-crash"))
    by_defect = {r.defect: r for r in summary.results}
    assert by_defect["pipeline-event-missing"].counts
    assert by_defect["pipeline-event-missing"].failing[0]["messages"] == [
        "fake: pipeline event dashboard_refresh never arrived for session s-1"]
    missed = by_defect["zero-segment-crash"]
    assert not missed.caught and not missed.counts and missed.exit_code == 0
    assert not summary.passed  # one defect slipped through
    assert not (tmp_path / "untagged-ran").exists()  # only tagged scenarios ran
    records = {r["defect"]: r for r in run.records("selftest")}
    caught = records["pipeline-event-missing"]
    assert caught["caught"] and caught["healthy_passed"] is True and caught["counted"] is True
    assert caught["run_dir"] == "artifacts/selftest/pipeline-event-missing"
    assert records["zero-segment-crash"]["caught"] is False
    # each defect ran in its own run directory, with the defect recorded
    sub = RunDir(run.path / "artifacts" / "selftest" / "pipeline-event-missing")
    assert {r["params"]["defects"][0] for r in sub.records("scenario")} == {"pipeline-event-missing"}
    lines = "\n".join(summary.lines())
    assert "Self-test: 1/2 defects caught" in lines
    assert "MISSED" in lines and "zero-segment-crash" in lines


def test_a_catch_that_also_fails_when_healthy_does_not_count(root, tmp_path):
    body = (root / "conformance" / "test_fake.py").read_text()
    (root / "conformance" / "test_fake.py").write_text(
        body.replace('"health-lies" in harness_options.defects', "True"))
    run = RunDir.create(tmp_path / "run")
    summary = selftest.run_selftest(run, root, PytestOptions(), only=("health-lies",))
    (result,) = summary.results
    assert result.caught and result.healthy_passed is False and not result.counts
    assert "SUSPECT" in "\n".join(summary.lines())


def test_harness_run_suite_selftest(root, tmp_path, capsys):
    out = tmp_path / "out"
    code = cli.main(["run", "--scenarios", str(root), "--out", str(out), "--suite", "selftest",
                     "--defect", "health-lies"])
    text = capsys.readouterr().out
    assert code == 0, text
    assert "Self-test: 1/1 defects caught" in text
    assert [r["defect"] for r in RunDir(out).records("selftest")] == ["health-lies"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["verdict"] == "pass" and summary["selftest"]["caught"] == 1  # the report agrees


def test_selftest_refuses_a_user_target(root, tmp_path):
    run = RunDir.create(tmp_path / "run")
    summary = selftest.run_selftest(run, root, PytestOptions(target="http://127.0.0.1:9", api_key="k"))
    assert summary.harness_error and "--target" in summary.harness_error


def test_record_shape_is_json():
    r = selftest.DefectResult(defect="d", suites=["conformance"], caught=True, healthy_passed=True)
    rec = json.loads(json.dumps(r.to_record()))
    assert rec["record"] == "selftest" and rec["counted"] is True


def test_ci_plan_proves_every_defect_with_short_scenarios():
    """In CI, every planted defect has a suite to catch it; load joins only for the short soak."""
    from harness.runner import default_scenarios_root
    from harness.selftest import DEFECT_SUITES, plan

    runs, skipped = plan(default_scenarios_root(), "ci")
    assert skipped == {}
    assert set(runs) == set(DEFECT_SUITES)
    assert runs["unbounded-transcript"] == ["load"]
    assert runs["no-resume"] == ["chaos", "docker"]  # the container's network case catches it too
    assert "load" not in runs["slow-session-create"]  # its conformance scenario is enough in CI
    nightly, _ = plan(default_scenarios_root(), "nightly")
    assert "load" in nightly["slow-session-create"]

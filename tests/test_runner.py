"""``harness run``: suite selection, exit codes, progress and the summary, on tiny fake suites.

The fake suites live in a temporary scenarios root (``--scenarios``) and never start a server:
they record verdicts through the ``scenario`` fixture only, so each run takes a second or two.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from harness import cli, runner

PASSING = '''
from harness.checks.verdict import Verdict, Status

def test_ok(scenario):
    scenario.check(Verdict("demo.ok", Status.PASS, "fine", metrics={"session_create_ms": [40.0]}))
    scenario.verify()

def test_ok_too(scenario):
    scenario.check(Verdict("demo.ok", Status.PASS, "fine", metrics={"session_create_ms": [60.0]}))
    scenario.verify()
'''

FAILING = '''
from harness.checks.verdict import Verdict, Status

def test_fine(scenario):
    scenario.check(Verdict("demo.ok", Status.PASS, "fine", metrics={"session_create_ms": [40.0]}))
    scenario.verify()

def test_lost(scenario):
    scenario.check(Verdict("integrity.lost", Status.FAIL, "lost word 'jones' in segment 2 of session s-9"))
    scenario.verify()
'''

UNKNOWN = '''
from harness.checks.verdict import Verdict, Status

def test_too_few(scenario):
    scenario.check(Verdict("latency.final", Status.UNKNOWN, "1 sample(s), need 3"))
    scenario.verify()
'''

SERVER_DOWN = '''
import pytest
from harness.services import ServiceError

@pytest.fixture
def server():
    raise ServiceError("reference server exited with code 1 before it was ready")

def test_needs_server(server, scenario):
    scenario.verify()
'''


BACKEND_TIMEOUT = '''
import pytest
from harness.errors import ScenarioTimeout

@pytest.fixture
def acked():
    # what a scenario raises when the backend stops acking: a backend failure, even in a fixture
    raise ScenarioTimeout("no ack past offset 3200 of 67200 within 10 s")

def test_needs_acks(acked, scenario):
    scenario.verify()
'''


SLO = '''
description = "test gate"
[slo.session_create_ms]
thresholds = ["p(95)<{limit}"]
'''


@pytest.fixture
def slo_file(tmp_path: Path) -> Path:
    path = tmp_path / "gate.toml"
    path.write_text(SLO.format(limit=2000))
    return path


@pytest.fixture
def scenarios(tmp_path: Path, slo_file: Path) -> Path:
    root = tmp_path / "scenarios"
    for suite, body in {"good": PASSING, "bad": FAILING, "vague": UNKNOWN, "down": SERVER_DOWN,
                        "stuck": BACKEND_TIMEOUT}.items():
        (root / suite).mkdir(parents=True)
        (root / suite / f"test_{suite}.py").write_text(textwrap.dedent(body))
    (root / "empty").mkdir()
    return root


def run(scenarios: Path, out: Path, *extra: str) -> int:
    """``harness run`` on the fake suites, judged by the test SLO file unless ``--slo`` is given."""
    slo = [] if "--slo" in extra else ["--slo", str(scenarios.parent / "gate.toml")]
    return cli.main(["run", "--scenarios", str(scenarios), "--out", str(out), *slo, *extra])


# --- argument errors ----------------------------------------------------------------------
def test_unknown_suite_is_named_with_the_known_ones(scenarios, tmp_path, capsys):
    assert run(scenarios, tmp_path / "out", "--suite", "good,nosuch") == 2
    err = capsys.readouterr().err
    assert "'nosuch'" in err
    assert "known suites: bad, down, empty, good, stuck, vague, selftest" in err
    assert not (tmp_path / "out").exists()  # nothing ran, nothing written


def test_remote_target_is_refused(scenarios, tmp_path, capsys):
    code = run(scenarios, tmp_path / "out", "--suite", "good", "--target", "http://198.51.100.7:8700", "--api-key", "k")
    assert code == 2
    assert "not a loopback address" in capsys.readouterr().err


def test_target_needs_an_api_key(scenarios, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("HARNESS_API_KEY", raising=False)
    assert run(scenarios, tmp_path / "out", "--suite", "good", "--target", "http://127.0.0.1:9") == 2
    assert "--api-key" in capsys.readouterr().err


def test_defect_with_target_is_refused(scenarios, tmp_path, capsys):
    code = run(scenarios, tmp_path / "out", "--suite", "good", "--target", "http://127.0.0.1:9",
               "--api-key", "k", "--defect", "health-lies")
    assert code == 2
    assert "embedded reference server" in capsys.readouterr().err


def test_missing_slo_file_is_a_harness_error(scenarios, tmp_path, capsys):
    assert run(scenarios, tmp_path / "out", "--suite", "good", "--slo", str(tmp_path / "none.toml")) == 2
    assert "none.toml" in capsys.readouterr().err


def test_bad_slo_file_stops_the_run_before_it_starts(scenarios, tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text('[slo.session_create_ms]\nthresholds = ["p(95) < soon"]\n')
    assert run(scenarios, tmp_path / "out", "--suite", "good", "--slo", str(bad)) == 2
    err = capsys.readouterr().err
    assert "bad SLO file" in err and "bad threshold expression 'p(95) < soon'" in err
    assert not (tmp_path / "out").exists()


def test_a_failed_slo_exits_1_and_comes_first(scenarios, tmp_path, capsys):
    strict = tmp_path / "strict.toml"
    strict.write_text(SLO.format(limit=50))
    assert run(scenarios, tmp_path / "out", "--suite", "good", "--slo", str(strict)) == 1
    text = capsys.readouterr().out
    assert "FAIL     session_create_ms p(95)<50" in text
    assert "measured 60 over 2 sample(s)" in text
    assert text.index("session_create_ms p(95)<50") < text.index("Suites:")
    assert json.loads((tmp_path / "out" / "run.json").read_text())["slo_file"] == str(strict.resolve())


def test_profile_defaults_skip_suites_without_tests(tmp_path):
    root = tmp_path / "scenarios"
    (root / "conformance").mkdir(parents=True)
    (root / "conformance" / "test_x.py").write_text("def test_x():\n    pass\n")
    (root / "chaos").mkdir()  # no tests yet
    (root / "load").mkdir()
    (root / "load" / "test_l.py").write_text("def test_l():\n    pass\n")
    assert runner.resolve_suites(None, "ci", root) == ["conformance"]
    assert runner.resolve_suites(None, "nightly", root) == ["conformance", "load"]
    assert runner.resolve_suites("load, conformance,load", "ci", root) == ["load", "conformance"]
    with pytest.raises(cli.HarnessError, match="no suite of the ci profile"):
        runner.resolve_suites(None, "ci", tmp_path / "nowhere")


# --- exit codes -----------------------------------------------------------------------------
def test_all_passing_exits_0_and_writes_the_run(scenarios, tmp_path, capsys):
    out = tmp_path / "out"
    assert run(scenarios, out, "--suite", "good") == 0
    text = capsys.readouterr().out
    assert "== PASS ==" in text
    assert "PASS     session_create_ms p(95)<2000" in text
    assert "good: 2 passed, 0 failed" in text
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert sorted(r["scenario"] for r in records) == ["test_good::test_ok", "test_good::test_ok_too"]
    assert json.loads((out / "run.json").read_text())["suites"] == ["good"]
    assert (out / "artifacts" / "logs" / "pytest-good.log").exists()


def test_a_failed_check_exits_1_and_names_the_symptom(scenarios, tmp_path, capsys):
    assert run(scenarios, tmp_path / "out", "--suite", "bad") == 1
    text = capsys.readouterr().out
    assert "== FAIL ==" in text
    assert "bad: 1 passed, 1 failed" in text
    assert "bad/test_bad::test_lost" in text
    assert "lost word 'jones' in segment 2 of session s-9" in text
    assert "test_fine" not in text.split("Failing scenarios:")[1]  # passing ones are not listed


def test_an_unknown_verdict_exits_1(scenarios, tmp_path, capsys):
    assert run(scenarios, tmp_path / "out", "--suite", "vague") == 1
    assert "UNKNOWN latency.final: 1 sample(s), need 3" in capsys.readouterr().out


def test_a_server_that_does_not_start_is_a_harness_error(scenarios, tmp_path, capsys):
    assert run(scenarios, tmp_path / "out", "--suite", "down") == 2
    text = capsys.readouterr().out
    assert "== HARNESS ERROR ==" in text
    assert "reference server exited with code 1" in text


def test_a_backend_timeout_is_a_failure_not_a_harness_error(scenarios, tmp_path, capsys):
    # told apart by class (harness.errors.BackendError), whatever the text says
    assert run(scenarios, tmp_path / "out", "--suite", "stuck") == 1
    text = capsys.readouterr().out
    assert "== FAIL ==" in text and "HARNESS ERROR" not in text


def test_no_tests_collected_is_a_harness_error(scenarios, tmp_path, capsys):
    assert run(scenarios, tmp_path / "out", "--suite", "empty") == 2
    assert "no tests collected" in capsys.readouterr().out


def test_keyword_selects_scenarios(scenarios, tmp_path, capsys):
    assert run(scenarios, tmp_path / "out", "--suite", "bad", "-k", "fine") == 0
    assert "bad: 1 passed, 0 failed" in capsys.readouterr().out


def test_a_bad_keyword_expression_is_a_harness_error(scenarios, tmp_path, capsys):
    assert run(scenarios, tmp_path / "out", "--suite", "good", "-k", "and (") == 2
    assert "HARNESS ERROR" in capsys.readouterr().out


# --- progress and summary pieces -----------------------------------------------------------------
def test_progress_entries_count_tests_and_track_the_current_one():
    o = runner.SuiteOutcome(name="s")
    o.feed({"kind": "collected", "count": 3})
    o.feed({"kind": "start", "nodeid": "t::a"})
    assert o.current == "t::a"
    o.feed({"kind": "phase", "nodeid": "t::a", "when": "call", "outcome": "passed"})
    o.feed({"kind": "finish", "nodeid": "t::a"})
    o.feed({"kind": "start", "nodeid": "t::b"})
    o.feed({"kind": "phase", "nodeid": "t::b", "when": "call", "outcome": "passed"})
    o.feed({"kind": "phase", "nodeid": "t::b", "when": "teardown", "outcome": "failed", "text": "boom"})
    o.feed({"kind": "finish", "nodeid": "t::b"})
    o.feed({"kind": "start", "nodeid": "t::c"})
    o.feed({"kind": "phase", "nodeid": "t::c", "when": "setup", "outcome": "skipped"})
    o.feed({"kind": "finish", "nodeid": "t::c"})
    assert (o.total, o.done, o.passed, o.failed, o.skipped) == (3, 3, 1, 1, 1)
    assert o.errors == ["boom"] and o.current == ""
    o.exit_code = 1
    assert o.harness_error is None and o.status_word() == "fail"
    o.errors.append("E   harness.services.ServiceError: reference server not ready after 60 s")
    assert o.harness_error is None  # the text of a report is never read for the class
    o.feed({"kind": "phase", "nodeid": "t::d", "when": "setup", "outcome": "failed", "text": "...",
            "harness_error": "ServiceError: reference server not ready after 60 s"})
    assert o.harness_error == "ServiceError: reference server not ready after 60 s"


def test_a_suite_whose_every_scenario_was_left_out_is_not_applicable_not_an_error():
    o = runner.SuiteOutcome(name="chaos")
    o.feed({"kind": "collected", "count": 0, "left_out": 24, "left_out_reasons": ["the target (deepgram) lacks "
            "offsets (audio frames carry byte offsets ...); replay (a reconnect replays ...)"]})
    o.exit_code = runner.PYTEST_NO_TESTS
    assert o.harness_error is None and o.status_word() == "n/a"
    assert runner._lacking_summary([o]) == ["offsets: 1 chaos", "replay: 1 chaos"]
    empty = runner.SuiteOutcome(name="empty", exit_code=runner.PYTEST_NO_TESTS, total=0)
    assert empty.harness_error == "no tests collected"  # nothing left out: a real harness error


def test_summary_puts_slo_verdicts_first(tmp_path):
    from harness.results import RunDir

    rundir = RunDir.create(tmp_path / "r")
    outcome = runner.SuiteOutcome(name="conformance", total=1, done=1, passed=1, exit_code=0,
                                  log=str(rundir.path / "artifacts" / "x.log"))
    slos = [runner.SloLine("p(95) final_latency_ms < 1500", "fail", "p(95)=2210 ms over 12 samples")]
    lines: list[str] = []

    class Sink:
        def write(self, s):
            lines.append(s)

    code = runner.exit_code(rundir, [outcome], slos)
    assert code == 1  # an SLO failed even though every scenario passed
    runner.print_summary(rundir, [outcome], slos, "ci.toml", None, None, code, stream=Sink())
    text = "".join(lines)
    assert text.index("p(95) final_latency_ms < 1500") < text.index("Suites:")
    assert "FAIL     p(95) final_latency_ms < 1500  p(95)=2210 ms over 12 samples" in text


def test_a_suite_run_alone_is_judged_by_its_own_slo_file(tmp_path):
    import argparse

    from harness.runner import _slo_file

    (tmp_path / "property").mkdir()
    (tmp_path / "property" / "slo.toml").write_text('[slo.session_success]\nthresholds = ["rate>0.98"]\n')
    (tmp_path / "chaos").mkdir()
    args = argparse.Namespace(slo=None, profile="ci")
    own = tmp_path / "property" / "slo.toml"
    assert _slo_file(args, ["property"], tmp_path) == str(own.resolve())
    assert _slo_file(args, ["property", "selftest"], tmp_path) == str(own.resolve())
    assert _slo_file(args, ["property", "chaos"], tmp_path).endswith("ci.toml")  # several suites: the profile's
    assert _slo_file(args, ["chaos"], tmp_path).endswith("ci.toml")  # no file of its own
    args.slo = str(tmp_path / "mine.toml")
    assert _slo_file(args, ["property"], tmp_path) == str((tmp_path / "mine.toml").resolve())


# --- the trend (--history) ---------------------------------------------------------------------
def test_history_records_suite_times_and_the_second_run_shows_the_first(scenarios, tmp_path, capsys):
    history = tmp_path / "nightly"
    history.mkdir()
    assert run(scenarios, history / "run-a", "--suite", "good", "--history", str(history)) == 0
    first = json.loads((history / "run-a" / "summary.json").read_text())
    assert first["trend"]["since_previous"] is None  # nothing earlier yet
    times = json.loads((history / "run-a" / "run.json").read_text())["suite_durations"]
    assert set(times) == {"good"} and times["good"] > 0
    assert run(scenarios, history / "run-b", "--suite", "good,bad", "--history", str(history)) == 1
    trend = json.loads((history / "run-b" / "summary.json").read_text())["trend"]
    assert [r["name"] for r in trend["runs"]] == ["run-a", "run-b"]
    assert trend["since_previous"]["previous"] == "run-a"
    assert sorted(n["scenario"] for n in trend["since_previous"]["new"]) == ["bad/test_bad::test_fine", "bad/test_bad::test_lost"]
    rows = {r["suite"]: r["seconds"] for r in trend["suite_durations"]["rows"]}
    assert rows["good"][0] == times["good"] and rows["bad"][0] is None


def test_history_that_is_not_a_directory_stops_the_run(scenarios, tmp_path, capsys):
    assert run(scenarios, tmp_path / "out", "--suite", "good", "--history", str(tmp_path / "nope")) == 2
    assert "--history" in capsys.readouterr().err and not (tmp_path / "out").exists()
    assert run(scenarios, tmp_path / "out", "--suite", "good", "--history", str(tmp_path), "--history-last", "0") == 2
    assert "at least 1" in capsys.readouterr().err


# --- containers (--target-image / --target-container) -------------------------------------------
def test_container_options_are_checked_before_anything_runs(scenarios, tmp_path, capsys):
    out = tmp_path / "out"
    assert run(scenarios, out, "--suite", "good", "--container-port", "9000") == 2
    assert "--container-port needs --target-image or --target-container" in capsys.readouterr().err
    assert run(scenarios, out, "--suite", "good", "--target-image", "a:1", "--target-container", "b") == 2
    assert "give one of --target, --target-image and --target-container" in capsys.readouterr().err
    assert run(scenarios, out, "--suite", "good", "--target-container", "b", "--defect", "no-resume") == 2
    assert "--defect applies to a server the harness starts" in capsys.readouterr().err
    assert run(scenarios, out, "--suite", "good", "--target-image", "nothing/here:1") == 2
    assert "image nothing/here:1 is not in the local image store" in capsys.readouterr().err
    assert run(scenarios, out, "--suite", "good", "--target-container", "no-such-container-x1") == 2
    assert "no container named 'no-such-container-x1'" in capsys.readouterr().err
    assert not out.exists()


def test_options_reach_pytest():
    from harness.runner import PytestOptions

    args = PytestOptions(target_image="img:1", container_port=9000, defects=("no-resume",)).args()
    assert args[args.index("--target-image") + 1] == "img:1"
    assert args[args.index("--container-port") + 1] == "9000" and "--defect" in args

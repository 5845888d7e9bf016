"""The trend over earlier runs (``--history DIR``): SLO charts, what flipped, suite times; and the
readable parameters and own session times of the suites table."""

import html as htmllib
import json
import re

import pytest
from runbuild import build_run

from harness.checks.verdict import Status, Verdict
from harness.cli import main
from harness.report import render
from harness.report.model import Item
from harness.report.sections import own_time_s, param_text
from harness.report.trend import earlier_runs
from harness.results import RunDir, ScenarioResult


def history_of_three(root):
    """Two healthy nights, then one with a doubled word and an unknown scenario."""
    runs = []
    for n, (broken, day) in enumerate(((False, "01"), (False, "02"), (True, "03")), 1):
        run = build_run(root / f"run-{n}", broken=broken, t_shift_ms=n)
        run.write_run_info({"started_at": f"2024-05-{day}T02:00:00",
                            "suite_durations": {"conformance": 60.0 + n, "chaos": 100.0 + 10 * n}})
        runs.append(run)
    return runs


@pytest.fixture(scope="module")
def three(tmp_path_factory):
    root = tmp_path_factory.mktemp("nightly")
    runs = history_of_three(root)
    return root, runs, render(runs[-1].path, history=root)


def test_trend_has_every_run_oldest_first_and_each_slo_series(three):
    root, runs, paths = three
    trend = json.loads(paths.summary.read_text())["trend"]
    assert [r["name"] for r in trend["runs"]] == ["run-1", "run-2", "run-3"]
    dup = next(s for s in trend["slo"] if s["name"] == "duplicated_words sum==0")
    assert dup["values"] == [0.0, 0.0, 1.0]
    assert dup["statuses"] == ["pass", "pass", "fail"]
    assert "chart" not in dup  # the summary carries numbers, the HTML the charts


def test_flipped_since_the_previous_run_and_suite_times(three):
    _, _, paths = three
    trend = json.loads(paths.summary.read_text())["trend"]
    prev = trend["since_previous"]
    assert prev["previous"] == "run-2"
    assert {(f["scenario"], f["before"], f["after"]) for f in prev["flipped"]} == {
        ("conformance/test_duplicate_engine_race", "pass", "fail"),
        ("conformance/test_health_truthful", "pass", "unknown")}
    rows = {r["suite"]: r["seconds"] for r in trend["suite_durations"]["rows"]}
    assert rows == {"chaos": [110.0, 120.0, 130.0], "conformance": [61.0, 62.0, 63.0]}


def test_html_shows_one_chart_per_slo_and_the_flips(three):
    _, _, paths = three
    html = paths.html.read_text()
    trend = json.loads(paths.summary.read_text())["trend"]
    section = html[html.index('id="trend"'):html.index('id="suites"')]
    charts = re.findall(r'<img alt="trend of ([^"]+)" src="data:image/png;base64,', section)
    assert sorted(htmllib.unescape(c) for c in charts) == sorted(s["name"] for s in trend["slo"]) and len(charts) >= 5
    assert "Flipped since the previous run" in section and "run-2" in section
    assert "conformance/test_duplicate_engine_race" in section
    assert '<a href="#trend">' in html


def test_first_run_says_so_and_a_report_without_history_has_no_trend(tmp_path):
    run = build_run(tmp_path / "hist" / "run-1", broken=False)
    html = render(run.path, history=tmp_path / "hist").html.read_text()
    assert "No earlier run was found in the history folder" in html
    html = render(run.path).html.read_text()
    assert 'id="trend"' not in html
    assert "trend" not in json.loads((run.path / "summary.json").read_text())


def test_current_run_later_runs_and_latest_link_are_not_history(tmp_path):
    root = tmp_path / "reports"
    runs = history_of_three(root)
    assert (root / "latest").resolve() == runs[2].path.resolve()  # RunDir.create points it at the newest
    past = earlier_runs(root, root / "latest", last=10)  # the current run reached through the link
    assert [r.path.name for r in past.runs] == ["run-1", "run-2"]
    past = earlier_runs(root, runs[1].path, last=10)  # run-3 started after run-2: not its history
    assert [r.path.name for r in past.runs] == ["run-1"]
    assert [r.path.name for r in earlier_runs(root, runs[2].path, last=1).runs] == ["run-2"]


def test_corrupt_earlier_run_is_skipped_and_named(tmp_path):
    root = tmp_path / "reports"
    runs = history_of_three(root)
    (root / "run-0").mkdir()
    (root / "run-0" / "results.jsonl").write_text("{not json\n")
    paths = render(runs[-1].path, history=root)
    trend = json.loads(paths.summary.read_text())["trend"]
    assert [r["name"] for r in trend["runs"]] == ["run-1", "run-2", "run-3"]
    assert len(trend["skipped"]) == 1 and trend["skipped"][0].startswith("run-0:")
    assert "earlier run run-0:" in paths.html.read_text()


def test_bad_history_input_is_named(tmp_path, capsys):
    run = build_run(tmp_path / "run-1", broken=False)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        render(run.path, history=tmp_path / "nowhere")
    assert main(["report", str(run.path), "--history", str(tmp_path / "nowhere")]) == 2
    assert "--history" in capsys.readouterr().err
    assert main(["report", str(run.path), "--history", str(tmp_path), "--history-last", "0"]) == 2
    assert "at least 1" in capsys.readouterr().err


def test_report_cli_prints_the_flips(tmp_path, capsys):
    runs = history_of_three(tmp_path / "reports")
    code = main(["report", str(runs[-1].path), "--history", str(tmp_path / "reports")])
    out = capsys.readouterr().out
    assert code == 1
    assert "Trend: 3 run(s)" in out and "2 scenario(s) flipped since run-2" in out
    assert "conformance/test_duplicate_engine_race: pass -> fail" in out


# --- what a reader trips on ---------------------------------------------------------------------
def test_parameters_read_as_text_with_units_never_as_a_repr():
    assert param_text({"stream": "upstream", "rate_kb_s": 16}) == "stream upstream, rate 16 kB/s"
    assert param_text({"signal": "SIGSTOP", "duration_s": 2.5, "latency_ms": 1000}) == \
        "signal SIGSTOP, duration 2.5 s, latency 1,000 ms"
    assert param_text([]) == "none" and param_text(["a", "b"]) == "a, b"
    assert "{" not in param_text({"nested": {"a": 1}}) and "'" not in param_text({"x": "y"})


def test_suites_table_shows_the_case_own_time_and_no_dict_repr(tmp_path):
    run = RunDir.create(tmp_path / "run-t")
    run.add_result(ScenarioResult("chaos", "test_fault[bandwidth-below-audio-rate]",
                                  [Verdict("integrity.completeness", Status.PASS, "all words")], duration_s=0.01,
                                  params={"fault": "bandwidth", "fault_params": {"stream": "upstream", "rate_kb_s": 16},
                                          "duration_s": 7.4, "defects": []}))
    html = render(run.path).html.read_text()
    assert "{&#39;stream&#39;" not in html and "{'stream'" not in html
    assert "stream upstream, rate 16 kB/s" in html
    row = html[html.index("test_fault[bandwidth-below-audio-rate]"):]
    assert re.search(r'<td class="num">7\.4</td>', row[:2000]) and "0.01" not in row[:2000]


def test_own_time_falls_back_to_the_test_time():
    item = Item("conformance", "t", Status.PASS, [], duration_s=3.25)
    assert own_time_s(item) == 3.25
    item.params["duration_s"] = 9.0
    assert own_time_s(item) == 9.0

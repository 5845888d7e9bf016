"""Rendering a hand-made run directory: self-contained HTML, summary.json, junit.xml, gate, baseline."""

import json
import re
import xml.etree.ElementTree as ET

import pytest
from runbuild import build_run

from harness.checks.verdict import Status, Verdict
from harness.report import render
from harness.results import RunDir, ScenarioResult
from harness.slo import SLOFileError


@pytest.fixture(scope="module")
def broken(tmp_path_factory):
    run = build_run(tmp_path_factory.mktemp("reports") / "run-broken")
    return run, render(run.path)


def test_self_contained_html(broken):
    run, paths = broken
    html = paths.html.read_text()
    refs = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)""", html)
    assert refs, "the report has images and links"
    assert not [r for r in refs if r.lower().startswith(("http://", "https://", "//"))]
    assert "<link" not in html and "<script" not in html
    assert html.count("data:image/png;base64,") >= 4  # distributions, over time, waterfalls, screenshot


def test_html_sections(broken):
    html = broken[1].html.read_text()
    for text in ("Service-level objectives", "Suites", "Latency", "Worst sessions", "Chaos matrix", "Load",
                 "Benchmarks", "Browser", "Defects caught", "Environment", "test_duplicate_engine_race",
                 "doubled &#39;the&#39;", "reset_peer", "latency (latency 1,000 ms)", "steady 20 users",
                 "test_codec_decode_final", "duplicate-engine-race", "client-no-reconnect"):
        assert text in html, text
    assert 'class="banner fail"' in html


def test_summary_json(broken):
    run, paths = broken
    summary = json.loads(paths.summary.read_text())
    assert summary["verdict"] == "fail" and summary["exit_code"] == 1
    assert summary["counts"] == {"pass": 5, "fail": 1, "unknown": 1, "total": 7}
    assert summary["suites"]["conformance"] == {"pass": 1, "fail": 1, "unknown": 1}
    assert summary["suites"]["load"] == {"pass": 1, "fail": 0, "unknown": 0}
    slo = {r["name"]: r for r in summary["slo"]["results"]}
    assert slo["duplicated_words sum==0"]["status"] == "fail" and slo["duplicated_words sum==0"]["measured"] == 1
    assert slo["final_latency_ms p(95)<500"]["samples"] > 0
    assert summary["selftest"] == {"defects": 2, "caught": 1, "missed": ["health-lies"]}
    assert any("planted defect(s) not caught: health-lies" in r for r in summary["reasons"])
    assert any("unknown" in r and "test_health_truthful" in r for r in summary["reasons"])
    unknown = next(s for s in summary["scenarios"] if s["scenario"] == "test_health_truthful")
    assert unknown["status"] == "unknown" and "HARNESS ERROR: ServiceError" in unknown["messages"][0]
    assert summary["environment"]["cores"] and summary["environment"]["packages"]["jiwer"]


def test_junit_counts_and_unknown_is_an_error(broken):
    root = ET.parse(broken[1].junit).getroot()
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    conf = suites["conformance"]
    assert (conf.get("tests"), conf.get("failures"), conf.get("errors"), conf.get("skipped")) == ("3", "1", "1", "0")
    failure = conf.find("testcase[@name='test_duplicate_engine_race']/failure")
    assert "integrity.duplicates" in failure.get("message") or "integrity.duplicates" in failure.text
    error = conf.find("testcase[@name='test_health_truthful']/error")
    assert error is not None and error.get("message").startswith("unknown:")
    assert root.find(".//skipped") is None
    assert "slo" in suites and int(root.get("tests")) == 7 + int(suites["slo"].get("tests"))


def test_healthy_run_passes_the_gate(tmp_path):
    run = build_run(tmp_path / "run-ok", broken=False)
    paths = render(run.path)
    assert paths.status is Status.PASS and paths.exit_code == 0, paths.reasons
    assert 'class="banner pass"' in paths.html.read_text()


def test_unknown_alone_fails_the_gate_with_its_own_message(tmp_path):
    run = RunDir.create(tmp_path / "run-u")
    run.add_result(ScenarioResult("conformance", "a", [Verdict("latency.final", Status.UNKNOWN, "0 samples")]))
    slo = tmp_path / "slo.toml"
    slo.write_text("[slo.lost_words]\nthresholds = 'sum==0'\nmin_samples = 0\n")
    paths = render(run.path, slo_file=slo)
    assert paths.status is Status.UNKNOWN and paths.exit_code == 1
    assert any("never passes silently" in r for r in paths.reasons)


def test_empty_run_is_unknown(tmp_path):
    run = RunDir.create(tmp_path / "run-empty")
    paths = render(run.path)
    assert paths.status is Status.UNKNOWN and any("nothing was judged" in r for r in paths.reasons)
    assert "No scenario results" in paths.html.read_text()


def test_baseline_diff(tmp_path):
    before = build_run(tmp_path / "run-before", broken=False)
    after = build_run(tmp_path / "run-after", broken=True)
    paths = render(after.path, baseline=before.path)
    changes = json.loads(paths.summary.read_text())["changes_since_baseline"]
    flipped = {f["scenario"]: (f["before"], f["after"]) for f in changes["flipped"]}
    assert flipped == {"conformance/test_duplicate_engine_race": ("pass", "fail"),
                       "conformance/test_health_truthful": ("pass", "unknown")}
    assert changes["worse"] == list(flipped) and changes["better"] == []
    dup = next(s for s in changes["slo"] if s["name"] == "duplicated_words sum==0")
    assert (dup["before"], dup["after"], dup["delta"]) == ("pass", "fail", 1.0)
    assert "Changes since baseline" in paths.html.read_text()


def test_bad_slo_file_raises_naming_it(tmp_path):
    run = RunDir.create(tmp_path / "run-x")
    bad = tmp_path / "bad.toml"
    bad.write_text("[slo.final_latency_ms]\nthresholds = ['p95<1']\n")
    with pytest.raises(SLOFileError, match="bad.toml"):
        render(run.path, slo_file=bad)
    with pytest.raises(FileNotFoundError, match="nope.toml"):
        render(run.path, slo_file=tmp_path / "nope.toml")


def test_missing_screenshot_and_unreadable_history_are_reported(tmp_path):
    run = RunDir.create(tmp_path / "run-m")
    (run.path / "histories" / "broken.json").write_text("{not json")
    run.add_result(ScenarioResult("browser", "b", [Verdict("x", Status.PASS)], histories=["histories/broken.json"],
                                  artifacts={"screenshot": "artifacts/gone.png"}))
    html = render(run.path).html.read_text()
    assert "artifacts/gone.png: not found in the run directory" in html
    assert "history histories/broken.json could not be read" in html


def test_chaos_rows_name_fault_and_params(tmp_path):
    from harness.report.model import RunData
    from harness.report.sections import chaos_matrix

    run = RunDir.create(tmp_path / "run-c")
    for name, status, lost in (("a", Status.PASS, 0), ("b", Status.FAIL, 4)):
        run.add_result(ScenarioResult("chaos", name, [Verdict("integrity.completeness", status, metrics={
            "lost_words": lost, "completeness": 1 - lost / 40, "recovery_ms": [120.0, 300.0]})],
            params={"fault": "latency", "fault_params": {"latency_ms": 800}, "layer": "toxiproxy"}))
    rows = chaos_matrix(RunData(run.path))
    assert len(rows) == 1
    row = rows[0]
    assert row["fault"] == "latency (latency 800 ms)" and row["layer"] == "toxiproxy"
    assert (row["lost"], row["completeness"], row["recovery"], row["status"]) == ("4", "90.0%", "210 / 300", "fail")


def test_environment_recorded_with_the_run_is_used(tmp_path):
    run = RunDir.create(tmp_path / "run-e")
    run.add_result(ScenarioResult("conformance", "a", [Verdict("x", Status.PASS)]))
    run.write_run_info({"environment": {"python": "3.12.1", "packages": {"jiwer": "9.9"}, "cores": 64}})
    paths = render(run.path)
    html = paths.html.read_text()
    assert "3.12.1" in html and "jiwer 9.9" in html and "recorded with the run" in html
    assert json.loads(paths.summary.read_text())["environment"]["memory"] == "unknown"


def test_clients_table_has_a_row_per_client_and_fault_with_its_finding(tmp_path):
    from harness.report.model import RunData
    from harness.report.sections import clients_table

    run = RunDir.create(tmp_path / "run-clients")
    row = Verdict("clients.row", Status.PASS, "pipecat x cut", metrics={
        "client_recovered": 0, "client_words_lost": 20, "client_baseline_words": 25, "client_words_doubled": 0,
        "client_reconnect_delay_ms": 4199.0, "client_attempts": 1},
        evidence={"client": "pipecat-deepgram", "fault": "cut", "documented": "after a cut: reconnect after 4 s",
                  "findings": ["did not recover, documented: recovers"]})
    gate = Verdict("slo.client_words_doubled", Status.FAIL, "client_words_doubled max<1 not met")
    run.add_result(ScenarioResult("relay", "test_clients::x[pipecat-deepgram-cut]", [row, gate]))
    base = Verdict("clients.row", Status.PASS, "clean", metrics={
        "client_words_lost": 0, "client_expected_words": 33, "client_attempts": 1},
        evidence={"client": "pipecat-deepgram", "fault": "clean", "documented": "every word", "findings": []})
    run.add_result(ScenarioResult("relay", "test_clients::b[pipecat-deepgram]", [base]))
    run.add_result(ScenarioResult("relay", "test_stream::other", [Verdict("relay.finalize", Status.PASS)]))
    rows = clients_table(RunData(run.path))
    assert [(r["client"], r["fault"]) for r in rows] == [("pipecat-deepgram", "clean"), ("pipecat-deepgram", "cut")]
    cut = rows[1]
    assert (cut["recovered"], cut["lost"], cut["delay"], cut["attempts"], cut["status"]) == (
        "no", "20 of 25", "4.20 s", "1", "fail")
    assert cut["findings"] == ["did not recover, documented: recovers"]
    assert (rows[0]["recovered"], rows[0]["lost"], rows[0]["delay"]) == ("–", "0 of 33", "–")
    html = render(run.path).html.read_text()
    assert "STT clients under vendor faults" in html and "did not recover, documented: recovers" in html
    assert "after a cut: reconnect after 4 s" in html

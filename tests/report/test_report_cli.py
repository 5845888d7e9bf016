"""``harness report``: exit status is the gate's; bad input is exit 2 naming what was wrong."""

from harness.checks.verdict import Status, Verdict
from harness.cli import main
from harness.results import RunDir, ScenarioResult


def small_run(path, status=Status.PASS, lost=0):
    run = RunDir.create(path)
    run.add_result(ScenarioResult("conformance", "test_a", [Verdict("integrity.completeness", status, "msg a",
                                                                     metrics={"lost_words": lost})]))
    return run


def slo_file(tmp_path):
    f = tmp_path / "slo.toml"
    f.write_text("[slo.lost_words]\nthresholds = 'sum==0'\n")
    return f


def test_pass_exits_0_and_writes_the_three_files(tmp_path, capsys):
    run = small_run(tmp_path / "run-a")
    assert main(["report", str(run.path), "--slo", str(slo_file(tmp_path))]) == 0
    out = capsys.readouterr().out
    assert out.startswith("PASS") and "report.html" in out
    assert all((run.path / n).is_file() for n in ("report.html", "summary.json", "junit.xml"))


def test_fail_exits_1_and_baseline_changes_are_printed(tmp_path, capsys):
    before = small_run(tmp_path / "run-a")
    after = small_run(tmp_path / "run-b", Status.FAIL, lost=3)
    code = main(["report", str(after.path), "--baseline", str(before.path), "--slo", str(slo_file(tmp_path))])
    out = capsys.readouterr().out
    assert code == 1
    assert "conformance/test_a: pass -> fail" in out
    assert "SLO lost_words sum==0: pass -> fail (measured +3.0)" in out


def test_unknown_exits_1(tmp_path, capsys):
    run = small_run(tmp_path / "run-u", Status.UNKNOWN)
    assert main(["report", str(run.path), "--slo", str(slo_file(tmp_path))]) == 1
    assert capsys.readouterr().out.startswith("UNKNOWN")


def test_bad_input_exits_2_naming_it(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nowhere")]) == 2
    assert "nowhere is not a directory" in capsys.readouterr().err
    (tmp_path / "plain").mkdir()
    assert main(["report", str(tmp_path / "plain")]) == 2
    assert "has no results.jsonl" in capsys.readouterr().err
    run = small_run(tmp_path / "run-c")
    bad = tmp_path / "bad.toml"
    bad.write_text("[slo.lost_words]\nthresholds = 'total==0'\n")
    assert main(["report", str(run.path), "--slo", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.toml" in err and "lost_words" in err and "total==0" in err
    assert main(["report", str(run.path), "--slo", str(tmp_path / "missing.toml")]) == 2
    assert "missing.toml does not exist" in capsys.readouterr().err

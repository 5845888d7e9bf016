"""``harness load``: argument errors (in process: no Locust is imported) and a tiny real run
end to end (Locust in its own subprocess against the embedded reference server)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from harness.cli import main
from harness.load.cli import parse_duration
from harness.results import RunDir

HARNESS = [sys.executable, "-m", "harness.cli", "load"]


@pytest.mark.parametrize("argv, message", [
    (["--headless", "--users", "2"], "needs --duration"),
    (["--soak"], "needs --duration"),
    (["--duration", "5q"], "is not a duration"),
    (["--duration", "13h"], "exceeds the 12 h limit"),
    (["--duration", "10s", "--target", "http://203.0.113.7:8700", "--api-key", "k"], "not a loopback address"),
    (["--duration", "10s", "--target", "http://127.0.0.1:9", "--defect", "health-lies", "--api-key", "k"],
     "cannot apply to --target"),
    (["--duration", "10s", "--users", "5000"], "hard cap"),
    (["--web", "--worker"], "choose one of"),
    (["--duration", "10s", "--engine", "whisper"], "unknown engine 'whisper'"),
    (["--duration", "10s", "--engine", "scripted,pocketsphinx"], "for --find-capacity only"),
    (["--duration", "10s", "--fixture", "nope"], "unknown fixture 'nope'"),
    (["--duration", "10s", "--fixture", "bad-stereo"], "deliberately broken"),
    (["--worker", "--master-host", "198.51.100.1"], "not a loopback address"),
    (["--soak", "--ramp", "--duration", "10s"], "--ramp shapes a headless load"),
])
def test_bad_input_is_a_harness_error_naming_it(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.delenv("HARNESS_API_KEY", raising=False)
    assert main(["load", *argv, "--out", str(tmp_path / "run")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()  # refused before anything ran


def test_remote_target_is_allowed_only_when_asked(capsys, tmp_path):
    # --allow-remote passes the safety check; the run then stops at the next problem (no duration)
    assert main(["load", "--target", "http://203.0.113.7:8700", "--api-key", "k", "--allow-remote"]) == 2
    assert "needs --duration" in capsys.readouterr().err


def test_durations():
    assert parse_duration("90") == 90 and parse_duration("90s") == 90
    assert parse_duration("2m") == 120 and parse_duration("1h30m") == 5400


def _records(run: Path, kind: str) -> list[dict]:
    return list(RunDir(run).records(kind))


def test_tiny_headless_run_end_to_end(tmp_path):
    """Three users for a few seconds: a run directory with the load record, Locust's files, the
    raw samples and the report; the scripted engine loses no word, so the gate passes."""
    out = tmp_path / "run"
    proc = subprocess.run([*HARNESS, "--headless", "--users", "3", "--spawn-rate", "3", "--duration", "4s",
                           "--fixture", "meeting-03-awb", "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (load,) = _records(out, "load")
    assert load["sessions"]["ok"] >= 3 and load["sessions"]["failed"] == 0
    steps = {row["step"]: row for row in load["steps"]}
    assert steps["final"]["count"] >= 3 and steps["final"]["locust_p95_ms"] is not None
    assert {v["name"] for v in load["verdicts"]} == {"load.sessions", "load.latency", "load.pacing"}
    for label in ("locust report", "locust stats (csv)", "raw samples"):
        assert (out / load["artifacts"][label]).exists(), label
    assert list((out / "artifacts/load/samples").glob("samples-*.jsonl"))
    info = json.loads((out / "run.json").read_text())
    assert info["profile"] == "load" and info["slo_file"].endswith("slo.toml")
    assert (out / "report.html").is_file() and "Load" in (out / "report.html").read_text()
    assert "PASS" in proc.stdout


def test_web_ui_answers_then_stops_on_sigterm(tmp_path):
    port = 19421
    proc = subprocess.Popen([*HARNESS, "--web", "--web-port", str(port), "--duration", "60s", "--out",
                             str(tmp_path / "web")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        status, deadline = None, time.monotonic() + 45
        while time.monotonic() < deadline and status is None:
            try:
                status = httpx.get(f"http://127.0.0.1:{port}/", timeout=2, trust_env=False).status_code
            except httpx.HTTPError:
                time.sleep(0.5)
        assert status == 200
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=40)
        assert f"http://127.0.0.1:{port}" in out
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{port}/", timeout=2, trust_env=False)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

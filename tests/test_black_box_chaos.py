"""The chaos matrix against a backend the harness did not start: ``harness serve`` run as its own
process and spoken to with ``--protocol deepgram`` (no resume), as a user's backend would be.

A small subset: a connection closed 1001 mid-stream (the client reconnects as a new session) and
a dropped final, plus a process fault that cannot run against a target and must be left out with
its reason, never failed. The whole matrix on every protocol is measured for the README's table.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from harness.services import free_port

ROOT = Path(__file__).resolve().parents[1]
KEY = "black-box-key"


@pytest.fixture
def served(tmp_path: Path):
    """``harness serve`` as a process (PocketSphinx, no test hooks); its URL once /health answers."""
    port = free_port()
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "serve", "--port", str(port), "--api-key", KEY,
                             "--db", str(tmp_path / "serve.db")], stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, f"harness serve exited with {proc.returncode}: {(tmp_path / 'serve.log').read_text()}"
            try:
                if httpx.get(f"{url}/health", headers={"Authorization": f"Bearer {KEY}"}, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "harness serve did not answer GET /health within 60 s"
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def test_deepgram_chaos_subset_passes_against_a_black_box_server(served: str, tmp_path: Path):
    out = tmp_path / "run"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.run(
        [sys.executable, "-m", "harness.cli", "run", "--target", served, "--api-key", KEY, "--protocol", "deepgram",
         "--suite", "chaos", "-k", "ws-close-1001 or ws-drop-final-2 or kill9-restart",
         "--slo", str(ROOT / "harness" / "slo" / "ci-integrity.toml"), "--out", str(out)],
        capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["suites"]["chaos"] == {"pass": 2, "fail": 0, "unknown": 0}
    assert "embedded_server: 1 chaos" in proc.stdout  # kill -9 left out with its reason, not failed
    verdicts = {}
    for line in (out / "results.jsonl").read_text().splitlines():
        record = json.loads(line)
        for v in record.get("verdicts") or []:
            verdicts.setdefault(v["name"], []).append(v["status"])
    for name in ("chaos.words_around_fault", "chaos.next_session_served", "chaos.recovery"):
        assert verdicts.get(name) == ["pass", "pass"], (name, verdicts.get(name))

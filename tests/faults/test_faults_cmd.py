"""``harness serve --faults`` and ``harness faults``: a faulty vendor in one command, the same
faults at the same points on every run, and the record showing them."""

from __future__ import annotations

import asyncio
import json
import queue
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from harness.services import ReferenceServer
from test_vendor_rules import stream

NET_0000_EVERY_SECOND = """\
# every second Deepgram connection: 1011 NET-0000 after 2 s of audio
[[fault]]
type = "vendor_error"
preset = "deepgram-net-0000"
at = { audio_ms = 2000 }
target = { every = 2 }
"""
START_TIMEOUT_S = 90
HARNESS = [str(Path(sys.executable).with_name("harness"))]  # the console script users run


class Command:
    """A harness command in the foreground, its output read line by line in a thread."""

    def __init__(self, *args: str):
        self.proc = subprocess.Popen([*HARNESS, *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, start_new_session=True)
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def until(self, text: str, timeout_s: float = START_TIMEOUT_S) -> list[str]:
        while True:
            try:
                line = self.lines.get(timeout=timeout_s)
            except queue.Empty:
                raise AssertionError(f"no line {text!r} within {timeout_s:g} s; output so far: {self.seen}") from None
            if line is None:
                raise AssertionError(f"the command exited ({self.proc.wait()}) before printing {text!r}: {self.seen}")
            self.seen.append(line)
            if text in line:
                return self.seen

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError(f"the command did not exit within 30 s of SIGTERM: {self.seen}") from None


def _url(lines: list[str], protocol: str) -> str:
    for line in lines:
        m = re.match(rf"\s+{protocol}\s+(ws://\S+)", line)
        if m:
            return m.group(1)
    raise AssertionError(f"no {protocol} URL printed: {lines}")


def test_every_second_deepgram_connection_closes_net_0000_after_2_s_on_every_run(tmp_path):
    schedule = tmp_path / "faults.toml"
    schedule.write_text(NET_0000_EVERY_SECOND)
    seen_runs = []
    for run in range(5):
        record_file = tmp_path / f"record-{run}.json"
        cmd = Command("serve", "--faults", str(schedule), "--engine", "scripted", "--port", "0",
                      "--db", str(tmp_path / f"db-{run}.sqlite3"), "--api-key", "k", "--record", str(record_file))
        try:
            lines = cmd.until("fault proxy ready")
            base = _url(lines, "deepgram").removesuffix("/v1/listen")
            closes = [asyncio.run(stream(base, "k"))[1:] for _ in range(4)]
            record_url = next(line.split("record: ", 1)[1] for line in lines if line.startswith("record: "))
            record = httpx.get(record_url, timeout=10, trust_env=False).json()
        finally:
            code = cmd.stop()
        assert code == 0, cmd.seen
        assert [c for c, _ in closes] == [1000, 1011, 1000, 1011], (run, closes)
        assert all(r.startswith("NET-0000") for c, r in closes if c == 1011)
        rows = record["connections"]
        points = [(r["index"], [w["kind"] for w in r["faults"]], r["audio_bytes"] if r["faults"] else None,
                   r["frames"].get("upstream_sent") if r["faults"] else None, r["close_code"]) for r in rows]
        assert points == [(1, [], None, None, 1000), (2, ["vendor_error"], 64_000, 20, 1011),
                          (3, [], None, None, 1000), (4, ["vendor_error"], 64_000, 20, 1011)], (run, points)
        written = json.loads(record_file.read_text())
        assert [r["index"] for r in written["connections"]] == [1, 2, 3, 4]
        seen_runs.append(points)
    assert all(p == seen_runs[0] for p in seen_runs)


def test_harness_faults_in_front_of_any_loopback_backend(tmp_path):
    schedule = tmp_path / "faults.toml"
    schedule.write_text('[[fault]]\ntype = "refuse_handshake"\npreset = "deepgram-429"\ntarget = { first = 1 }\n')
    with ReferenceServer(engine="scripted", api_key="k") as server:
        cmd = Command("faults", "--upstream", server.ws_url, "--faults", str(schedule))
        try:
            lines = cmd.until("fault proxy ready")
            proxy = re.search(r"fault proxy on (ws://\S+)", "\n".join(lines)).group(1)
            import websockets

            with pytest.raises(websockets.InvalidStatus) as err:
                asyncio.run(stream(proxy, "k"))
            assert err.value.response.status_code == 429 and err.value.response.headers["Retry-After"] == "2"
            assert asyncio.run(stream(proxy, "k"))[1] == 1000
        finally:
            assert cmd.stop() == 0, cmd.seen


@pytest.mark.parametrize("args,message", [
    (["faults", "--upstream", "ws://10.1.2.3:80", "--faults", "{good}"], "loopback only: target host '10.1.2.3'"),
    (["faults", "--upstream", "ws://127.0.0.1:9", "--faults", "{bad}"], "bad.toml:2: unknown fault 'latncy'"),
    (["serve", "--faults", "{bad}", "--port", "0"], "bad.toml:2: unknown fault 'latncy'"),
])
def test_bad_input_is_refused_before_anything_starts(tmp_path, args, message):
    good, bad = tmp_path / "good.toml", tmp_path / "bad.toml"
    good.write_text('[[fault]]\ntype = "stall"\n')
    bad.write_text('[[fault]]\ntype = "latncy"\n')
    argv = [a.format(good=good, bad=bad) for a in args]
    done = subprocess.run([*HARNESS, *argv], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and message in done.stderr, (done.returncode, done.stderr)

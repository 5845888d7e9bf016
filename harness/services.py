"""Start, wait for and stop the processes a run needs: the reference server and toxiproxy-server.

The reference server is a black box to the harness: it is started as a process
(``python -m reference_server``) and spoken to over the network only, exactly like a user's
backend. Both services are context managers, so a failing test never leaves a process behind.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path

import httpx

from harness.errors import ServiceError  # noqa: F401 - defined in harness.errors, importable from here

READY_LINE = re.compile(r"reference-server listening on (http://\S+) api_key=(\S+)")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class _OutputTail:
    """Keeps the last lines a process printed, so a failure can show them."""

    def __init__(self, stream, limit: int = 200, on_line=None):
        self.lines: deque[str] = deque(maxlen=limit)
        self._on_line = on_line
        self._thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self._thread.start()

    def _pump(self, stream) -> None:
        for raw in iter(stream.readline, ""):
            line = raw.rstrip("\n")
            self.lines.append(line)
            if self._on_line:
                self._on_line(line)
        stream.close()

    def text(self) -> str:
        return "\n".join(self.lines)


class ReferenceServer:
    """The reference server as a child process.

    ``port=0`` picks a free port once and keeps it across ``restart()``, so clients and proxies
    can reconnect to the same address after a kill. The server also serves Wyoming over TCP, on
    ``wyoming_port`` (likewise picked once; ``wyoming_url`` is ``tcp://host:port``). The SQLite database lives in ``db_path``
    (a temporary file by default) and also survives restarts: that is what resume is tested on.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        engine: str = "pocketsphinx",
        defects: Sequence[str] = (),
        test_hooks: bool = False,
        db_path: str | Path | None = None,
        api_key: str | None = None,
        extra_args: Sequence[str] = (),
        python: str = sys.executable,
        start_timeout_s: float = 60.0,
        echo: bool = False,
        wyoming_port: int = 0,
    ):
        self.host = host
        self.port = port or free_port(host)
        self.wyoming_port = wyoming_port
        while self.wyoming_port in (0, self.port):  # two free ports, not the same one twice
            self.wyoming_port = free_port(host)
        self.engine = engine
        self.defects = list(defects)
        self.test_hooks = test_hooks
        self._tmpdir: tempfile.TemporaryDirectory | None = None
        if db_path is None:
            self._tmpdir = tempfile.TemporaryDirectory(prefix="reference-server-")
            db_path = Path(self._tmpdir.name) / "reference.sqlite3"
        self.db_path = Path(db_path)
        self.api_key = api_key or os.environ.get("REFERENCE_API_KEY") or secrets.token_urlsafe(18)
        self.extra_args = list(extra_args)
        self.python = python
        self.start_timeout_s = start_timeout_s
        self.echo = echo
        self.proc: subprocess.Popen | None = None
        self._output: _OutputTail | None = None
        self._ready = threading.Event()

    # --- addresses -----------------------------------------------------------------------
    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return "ws" + self.url[len("http") :]

    @property
    def wyoming_url(self) -> str:
        """Where the server serves Wyoming over TCP."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"tcp://{host}:{self.wyoming_port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def command(self) -> list[str]:
        cmd = [self.python, "-m", "reference_server", "--host", self.host, "--port", str(self.port),
               "--engine", self.engine, "--db", str(self.db_path), f"--api-key={self.api_key}",
               "--wyoming-port", str(self.wyoming_port)]
        for defect in self.defects:
            cmd += ["--defect", defect]
        if self.test_hooks:
            cmd.append("--test-hooks")
        return cmd + self.extra_args

    # --- life cycle ----------------------------------------------------------------------
    def start(self) -> ReferenceServer:
        if self.proc and self.proc.poll() is None:
            raise ServiceError(f"reference server already running (pid {self.proc.pid})")
        self._ready.clear()

        def on_line(line: str) -> None:
            if self.echo:
                print(line, flush=True)
            if READY_LINE.search(line):
                self._ready.set()

        self.proc = subprocess.Popen(
            self.command(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"}, start_new_session=True,
        )
        self._output = _OutputTail(self.proc.stdout, on_line=on_line)
        deadline = time.monotonic() + self.start_timeout_s
        while not self._ready.wait(0.05):
            if self.proc.poll() is not None:
                self._output._thread.join(timeout=2)
                raise ServiceError(
                    f"reference server exited with code {self.proc.returncode} before it was ready:\n"
                    f"{self.output()}"
                )
            if time.monotonic() > deadline:
                self.kill()
                raise ServiceError(f"reference server not ready after {self.start_timeout_s:.0f} s:\n{self.output()}")
        self.wait_healthy(timeout_s=max(1.0, deadline - time.monotonic()))
        return self

    def wait_healthy(self, timeout_s: float = 10.0) -> dict:
        deadline = time.monotonic() + timeout_s
        last_error = ""
        while time.monotonic() < deadline:
            try:
                r = httpx.get(f"{self.url}/health", headers=self.auth_headers(), timeout=2.0)
                if r.status_code == 200:
                    return r.json()
                last_error = f"HTTP {r.status_code}: {r.text[:200]}"
            except httpx.HTTPError as exc:
                last_error = repr(exc)
            time.sleep(0.05)
        raise ServiceError(f"reference server at {self.url} not healthy after {timeout_s:.1f} s: {last_error}")

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    def output(self) -> str:
        return self._output.text() if self._output else ""

    def stop(self, timeout_s: float = 10.0) -> int | None:
        """SIGTERM (graceful: streams closed with 1001), then SIGKILL if it does not exit."""
        if not self.proc or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.thaw()  # a frozen process cannot handle SIGTERM
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL: no cleanup, no close frames (what a crash looks like)."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def freeze(self) -> None:
        """SIGSTOP: the process holds its sockets but answers nothing."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)

    def restart(self, graceful: bool = True) -> ReferenceServer:
        self.stop() if graceful else self.kill()
        return self.start()

    def is_running(self) -> bool:
        return bool(self.proc and self.proc.poll() is None)

    def close(self) -> None:
        self.stop()
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None

    def __enter__(self) -> ReferenceServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()


def find_toxiproxy_server() -> str | None:
    """The toxiproxy-server binary: the virtualenv's (bootstrap puts it there), then PATH."""
    venv_bin = Path(sys.prefix) / "bin" / "toxiproxy-server"
    if venv_bin.exists():
        return str(venv_bin)
    return shutil.which("toxiproxy-server")


TOXIPROXY_MISSING = (
    "toxiproxy-server not found. Run scripts/bootstrap.sh (it builds it with Go), or put a "
    "toxiproxy-server on PATH, or set TOXIPROXY_URL to a running Toxiproxy."
)


class ToxiproxyServer:
    """A real toxiproxy-server process on loopback, or an existing one at ``TOXIPROXY_URL``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, url: str | None = None):
        self.external_url = url if url is not None else os.environ.get("TOXIPROXY_URL")
        self.host = host
        self.port = port or free_port(host)
        self.proc: subprocess.Popen | None = None
        self._output: _OutputTail | None = None

    @property
    def url(self) -> str:
        return self.external_url or f"http://{self.host}:{self.port}"

    def start(self, timeout_s: float = 15.0) -> ToxiproxyServer:
        if not self.external_url:
            binary = find_toxiproxy_server()
            if binary is None:
                raise ServiceError(TOXIPROXY_MISSING)
            self.proc = subprocess.Popen(
                [binary, "-host", self.host, "-port", str(self.port)],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
            )
            self._output = _OutputTail(self.proc.stdout)
        deadline = time.monotonic() + timeout_s
        last_error = ""
        while time.monotonic() < deadline:
            if self.proc and self.proc.poll() is not None:
                raise ServiceError(f"toxiproxy-server exited with code {self.proc.returncode}:\n{self._output.text()}")
            try:
                r = httpx.get(f"{self.url}/version", timeout=1.0)
                if r.status_code == 200:
                    return self
                last_error = f"HTTP {r.status_code}"
            except httpx.HTTPError as exc:
                last_error = repr(exc)
            time.sleep(0.05)
        self.stop()
        raise ServiceError(f"toxiproxy at {self.url} did not answer within {timeout_s:.0f} s: {last_error}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)

    def __enter__(self) -> ToxiproxyServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

"""The system under test as a process the harness starts: a command with placeholders.

``harness run --suite relay --sut "CMD"`` starts the user's service with ``CMD``'s placeholders
filled in, waits until it answers, streams through it, and stops it afterwards, keeping its output
as an artifact and sampling its memory (psutil) for the long-session check.

Placeholders (``str.format`` names; ``{{`` and ``}}`` for literal braces):

``{port}``             where the service must listen for clients (a free loopback port)
``{deepgram_url}``     the Deepgram stand-in (``ws://127.0.0.1:P/v1/listen``), behind the fault proxy
``{openai_url}``       the OpenAI Realtime stand-in's base (``ws://127.0.0.1:P/v1``)
``{assemblyai_url}``   the AssemblyAI stand-in (``ws://127.0.0.1:P/v3/ws``)
``{speechmatics_url}`` the Speechmatics stand-in (``ws://127.0.0.1:P/v2``)
``{vendor_key}``       the key the service must present to the vendor
``{api_key}``          the key the harness's client presents to the service
``{defects}``          ``--defect NAME`` for each planted defect asked for (the example relay's;
                       the self-test uses it); empty when none
"""

from __future__ import annotations

import os
import shlex
import signal
import string
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from harness.errors import ServiceError
from harness.paths import shipped_examples

PLACEHOLDERS = ("port", "deepgram_url", "openai_url", "assemblyai_url", "speechmatics_url", "vendor_key",
                "api_key", "defects")
# The example relay: examples/relay in a checkout, harness_examples/relay in an installed wheel.
EXAMPLE_RELAY = shipped_examples() / "relay"
# The example relay as the default system under test, so the suite has something to run in CI.
DEFAULT_SUT = (f"{shlex.quote(sys.executable)} {shlex.quote(str(EXAMPLE_RELAY))} --port {{port}} "
               "--deepgram-url={deepgram_url} --deepgram-api-key={vendor_key} --api-key={api_key} {defects}")
# (--flag=value: a generated key may start with "-", which a parser would take for a flag)
DEFAULT_READY_PATH = "/health"


class SutError(ServiceError):
    """The service could not be started, or did not become ready; the message says which and why
    (a harness error: ``harness run`` exits 2, nothing was learned about the service)."""


def fill_command(template: str, values: Mapping[str, str], defects: Sequence[str] = ()) -> list[str]:
    """The command's argv with placeholders filled. Unknown placeholders, and defects asked for in
    a command without ``{defects}``, are refused with the known names."""
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as exc:
        raise SutError(f"--sut {template!r} is not a valid command template: {exc} (use {{{{ and }}}} for braces)") from exc
    unknown = sorted(n for n in names if n not in PLACEHOLDERS)
    if unknown:
        raise SutError(f"--sut names unknown placeholder(s) {', '.join('{' + n + '}' for n in unknown)}; "
                       f"known: {', '.join('{' + n + '}' for n in PLACEHOLDERS)}")
    if defects and "defects" not in names:
        raise SutError(f"defects {', '.join(defects)} were asked for, but the --sut command has no {{defects}} "
                       "placeholder to pass them to the service")
    filled = {**{n: "" for n in PLACEHOLDERS}, **values,
              "defects": " ".join(f"--defect {shlex.quote(d)}" for d in defects)}
    return shlex.split(template.format(**filled))


@dataclass
class MemorySample:
    t_ns: int
    rss_bytes: int


@dataclass
class SutProcess:
    """The service as a child process (its own process group, so its children stop with it)."""

    argv: list[str]
    port: int
    ready_url: str | None = None  # None: wait for the port to accept connections
    log_path: Path | None = None
    start_timeout_s: float = 30.0
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen | None = None
    memory: list[MemorySample] = field(default_factory=list)
    _log: object = None
    _sampler: threading.Thread | None = None
    _stop_sampling: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> SutProcess:
        out = open(self.log_path, "w", encoding="utf-8") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self._log = out
        if self.log_path:
            out.write("$ " + shlex.join(self.argv) + "\n")
            out.flush()
        try:
            self.proc = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env},
                                         start_new_session=True)
        except OSError as exc:
            raise SutError(f"the system under test could not be started ({shlex.join(self.argv)}): {exc}") from exc
        self._wait_ready()
        self._sampler = threading.Thread(target=self._sample_memory, daemon=True)
        self._sampler.start()
        return self

    def _what(self) -> str:
        return f"GET {self.ready_url} to answer 2xx" if self.ready_url else f"127.0.0.1:{self.port} to accept connections"

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        last = ""
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise SutError(f"the system under test exited with code {self.proc.returncode} before it was ready "
                               f"(waited for {self._what()}):\n{self.output_tail()}")
            try:
                if self.ready_url:
                    r = httpx.get(self.ready_url, timeout=1.0, trust_env=False)
                    if r.status_code < 300:
                        return
                    last = f"HTTP {r.status_code}"
                else:
                    import socket

                    with socket.create_connection(("127.0.0.1", self.port), timeout=1.0):
                        return
            except (httpx.HTTPError, OSError) as exc:
                last = repr(exc)
            time.sleep(0.05)
        self.stop()
        raise SutError(f"the system under test was not ready after {self.start_timeout_s:.0f} s: waited for "
                       f"{self._what()}; last answer: {last}\n{self.output_tail()}")

    def _sample_memory(self, every_s: float = 0.5) -> None:
        import psutil

        try:
            root = psutil.Process(self.proc.pid)  # type: ignore[union-attr]
        except psutil.Error:
            return
        while not self._stop_sampling.wait(every_s):
            try:
                rss = root.memory_info().rss + sum(c.memory_info().rss for c in root.children(recursive=True))
            except psutil.Error:
                return
            self.memory.append(MemorySample(time.monotonic_ns(), rss))

    def memory_between(self, start_ns: int, end_ns: int) -> list[tuple[int, int]]:
        return [(m.t_ns, m.rss_bytes) for m in self.memory if start_ns <= m.t_ns <= end_ns]

    def output_tail(self, lines: int = 40) -> str:
        if not self.log_path or not Path(self.log_path).exists():
            return "(no log kept)"
        if self._log and not isinstance(self._log, int):
            self._log.flush()  # type: ignore[attr-defined]
        return "\n".join(Path(self.log_path).read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])

    def running(self) -> bool:
        return bool(self.proc and self.proc.poll() is None)

    def stop(self, timeout_s: float = 10.0) -> int | None:
        """SIGTERM to its process group, SIGKILL after ``timeout_s``."""
        self._stop_sampling.set()
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                with_kill = True
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    with_kill = False
                if with_kill:
                    self.proc.wait(timeout=10)
        if self._log and not isinstance(self._log, int):
            self._log.close()  # type: ignore[attr-defined]
            self._log = None
        return self.proc.returncode

    def __enter__(self) -> SutProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

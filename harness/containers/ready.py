"""Readiness the way testcontainers waits for it: a port that accepts, an HTTP status, or a line in
the container's log, each polled until a timeout whose message names what was waited for (and
shows the container's last log lines, and its exit code when it died meanwhile).
"""

from __future__ import annotations

import re
import socket
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx


class NotReady(RuntimeError):
    """A container did not become ready; the message names the wait and what was seen."""


class Wait(Protocol):
    def describe(self) -> str: ...
    def check(self, container: Any, host: str, port: int) -> str | None:
        """None when ready, else what was seen instead (for the timeout message)."""


@dataclass(frozen=True)
class PortOpen:
    """The published port accepts a TCP connection."""

    def describe(self) -> str:
        return "the port to accept a TCP connection"

    def check(self, container: Any, host: str, port: int) -> str | None:
        try:
            with socket.create_connection((host, port), timeout=1.0):
                return None
        except OSError as exc:
            return f"connect to {host}:{port}: {exc}"


@dataclass(frozen=True)
class HttpStatus:
    """``GET path`` answers ``status`` (with optional headers, e.g. the API key)."""

    path: str = "/health"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        return f"GET {self.path} to answer {self.status}"

    def check(self, container: Any, host: str, port: int) -> str | None:
        try:
            r = httpx.get(f"http://{host}:{port}{self.path}", headers=self.headers, timeout=2.0)
        except httpx.HTTPError as exc:
            return f"GET {self.path}: {exc!r}"
        return None if r.status_code == self.status else f"GET {self.path} answered {r.status_code}: {r.text[:200]}"


@dataclass(frozen=True)
class LogLine:
    """A line matching ``pattern`` in the container's log since it (last) started."""

    pattern: str

    def describe(self) -> str:
        return f"a log line matching {self.pattern!r}"

    def check(self, container: Any, host: str, port: int) -> str | None:
        since = _started_at(container)
        logs = container.logs(since=since).decode("utf-8", "replace") if since else container.logs().decode("utf-8", "replace")
        return None if re.search(self.pattern, logs, re.MULTILINE) else "no such line yet"


def _started_at(container: Any) -> int | None:
    """The container's last start as a Unix time (logs of earlier runs of it do not count)."""
    import datetime as dt

    text = (container.attrs.get("State") or {}).get("StartedAt") or ""
    if not text or text.startswith("0001-"):
        return None
    text = re.sub(r"\.(\d{6})\d*", r".\1", text.replace("Z", "+00:00"))
    try:
        return int(dt.datetime.fromisoformat(text).timestamp())
    except ValueError:
        return None


def wait_ready(container: Any, host: str, port: int, waits: list[Wait], timeout_s: float = 60.0,
               interval_s: float = 0.1) -> float:
    """Poll every wait in order until all hold; returns the seconds it took. ``NotReady`` names the
    first wait that did not hold, what was seen, the container's state and its last log lines."""
    started = time.monotonic()
    deadline = started + timeout_s
    for wait in waits:
        seen = "not checked yet"
        while True:
            container.reload()
            state = container.attrs.get("State") or {}
            if state.get("Status") in ("exited", "dead"):
                raise NotReady(f"container {container.name} exited with code {state.get('ExitCode')} while waiting for "
                               f"{wait.describe()}:\n{_tail(container)}")
            seen = wait.check(container, host, port) or ""
            if not seen:
                break
            if time.monotonic() > deadline:
                raise NotReady(f"container {container.name} not ready after {timeout_s:.0f} s: waited for "
                               f"{wait.describe()} on {host}:{port}; last seen: {seen}\n{_tail(container)}")
            time.sleep(interval_s)
    return time.monotonic() - started


def _tail(container: Any, lines: int = 30) -> str:
    try:
        return "its log ends:\n" + container.logs(tail=lines).decode("utf-8", "replace")
    except Exception as exc:  # the container may be gone: the wait's own message is what matters
        return f"(its log could not be read: {exc})"

"""Small pieces both drivers share: response parsing, history recording, close-code reading."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from websockets.exceptions import ConnectionClosed, InvalidStatus

from harness.errors import BackendError, ScenarioTimeout
from harness.history import History
from harness.protocols.base import HttpRequest

ABNORMAL_CLOSURE = 1006
WS_OPTIONS: dict[str, Any] = {
    "proxy": None,  # never route loopback test traffic through an environment proxy
    "compression": None,  # audio does not compress; deflate would only cost CPU on both sides
    "max_size": 2**22,
    # Once a close frame has arrived its code says all there is to know; waiting long for the
    # TCP teardown (a server that stopped reading, say) would only delay the reconnect.
    "close_timeout": 2.0,
}


class StreamConnectError(BackendError):
    """A WebSocket handshake that did not complete; ``status`` is the HTTP status of a refusal."""

    def __init__(self, url: str, error: str, status: int | None = None) -> None:
        self.url, self.error, self.status = url, error, status
        super().__init__(f"could not open stream {url}: {error}")


@dataclass(frozen=True)
class HttpResponse:
    status: int
    body: Any  # parsed JSON when the body is JSON, else text
    headers: dict[str, str]
    latency_ms: float


def parse_body(content: bytes, content_type: str | None) -> Any:
    import json

    if not content:
        return None
    text = content.decode("utf-8", "replace")
    if content_type and "json" in content_type:
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


def record_http(history: History | None, request: HttpRequest, status: int | None, latency_ms: float, error: str | None) -> None:
    if history is not None:
        history.add("http", method=request.method, path=request.path, status=status,
                    latency_ms=round(latency_ms, 3), error=error)


def close_info(exc: ConnectionClosed | None, close_code: int | None = None, close_reason: str | None = None) -> tuple[int, str]:
    """(code, reason) of a closed connection: the close frame received, else 1006 (dropped)."""
    if exc is not None:
        if exc.rcvd is not None:
            return exc.rcvd.code, exc.rcvd.reason
        return ABNORMAL_CLOSURE, ""
    if close_code is not None:
        return close_code, close_reason or ""
    return ABNORMAL_CLOSURE, ""


def handshake_failure(exc: BaseException) -> tuple[str, int | None]:
    """A connect exception as (message, HTTP status or None)."""
    if isinstance(exc, InvalidStatus):
        response = exc.response
        # Say why, when the server said: Deepgram puts it in dg-error, others in the body.
        why = response.headers.get("dg-error") or (response.body or b"").decode("utf-8", "replace").strip()
        detail = f": {why[:300]}" if why else ""
        return f"server rejected the handshake: HTTP {response.status_code}{detail}", response.status_code
    if isinstance(exc, TimeoutError):
        return "timed out during the opening handshake", None
    status = getattr(exc, "status", None)  # a transport's own refusal (Socket.IO connect_error) that gave one
    if isinstance(status, int) and not isinstance(status, bool):
        return f"server rejected the handshake with status {status}: {exc}", status
    return f"{type(exc).__name__}: {exc}", None


def timeout_symptom(seen: list[Any], timeout_s: float, symptom: Any = None) -> ScenarioTimeout:
    """The ScenarioTimeout for a wait that ran out: what did not happen, the limit, what came instead."""
    what = symptom(seen) if symptom is not None else "no matching event"
    return ScenarioTimeout(f"{what} within {timeout_s:g} s (received instead: {[e.type for e in seen] or 'nothing'})")

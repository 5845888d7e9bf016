"""TCP faults through a real Toxiproxy server: one proxy per scenario, toxics as timed windows.

The Toxiproxy API is driven through toxiproxy-python, off the event loop (``asyncio.to_thread``)
and with a timeout on every call. Toxiproxy has no expiry for a toxic, so a toxic only ever lives
inside a context manager that records a :class:`~harness.history.FaultWindow` and removes the
toxic in ``finally``; a :class:`ToxiproxyLab` owns the proxies of one test and always ends with
``POST /reset`` (every proxy enabled, every toxic gone), also when the test failed.

Where toxiproxy-python falls short, this module (and only this module) calls the HTTP API with
httpx; each place says why. Its shortfalls, as of 0.1.1:

- it cannot update a toxic's attributes (no ``POST /proxies/{proxy}/toxics/{toxic}``);
- its ``requests`` calls have no timeout, so a frozen Toxiproxy would hang the calling thread
  forever (patched below with a shim that adds one);
- it only raises for 400/404/409: any other error status passes silently, and ``reset()``
  returns a bool instead of raising (checked below);
- the server address is class-level state (``APIConsumer.host/port``), so it is set under a lock
  before every call;
- Toxiproxy itself accepts unknown toxic attributes and ignores them, so :class:`Toxic` checks
  names against the documented ones before anything is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import socket
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
import requests
import toxiproxy.api as _tp_api
from toxiproxy import Toxiproxy
from toxiproxy.exceptions import InvalidToxic, NotFound, ProxyExists
from toxiproxy.proxy import Proxy

from harness.history import FaultWindow, History
from harness.safety import require_loopback
from harness.errors import ServiceError

T = TypeVar("T")

DOWNSTREAM = "downstream"  # server -> client (Toxiproxy's name)
UPSTREAM = "upstream"  # client -> server
STREAMS = (DOWNSTREAM, UPSTREAM)

# Toxic type -> its attributes (Toxiproxy v2 README). Unknown names are refused here because the
# server would silently ignore them and the fault would never happen.
TOXIC_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "latency": ("latency", "jitter"),
    "bandwidth": ("rate",),
    "slicer": ("average_size", "size_variation", "delay"),
    "reset_peer": ("timeout",),
    "timeout": ("timeout",),
    "limit_data": ("bytes",),
    "slow_close": ("delay",),
}

DEFAULT_CALL_TIMEOUT_S = 5.0
PORT_RANGE = range(19100, 19200)  # the chaos suite's listen ports


class ToxiproxyError(ServiceError):
    """A Toxiproxy call failed or timed out; the message names the call and the answer."""


# --- toxics ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Toxic:
    """One toxic: ``type``, direction (``stream``), ``attributes`` and ``toxicity`` (0..1)."""

    type: str
    stream: str = DOWNSTREAM
    attributes: dict[str, int | float] = field(default_factory=dict)
    toxicity: float = 1.0
    name: str | None = None

    def __post_init__(self) -> None:
        if self.type not in TOXIC_ATTRIBUTES:
            raise ValueError(f"unknown toxic type {self.type!r}; expected one of {sorted(TOXIC_ATTRIBUTES)}")
        if self.stream not in STREAMS:
            raise ValueError(f"toxic stream must be 'downstream' or 'upstream', got {self.stream!r}")
        allowed = TOXIC_ATTRIBUTES[self.type]
        for key, value in self.attributes.items():
            if key not in allowed:
                raise ValueError(f"toxic {self.type!r} has no attribute {key!r}; it has {list(allowed)}")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"toxic {self.type!r} attribute {key!r} must be a number >= 0, got {value!r}")
        if not 0.0 <= self.toxicity <= 1.0:
            raise ValueError(f"toxicity must be within [0, 1], got {self.toxicity!r}")

    @property
    def key(self) -> str:
        """The toxic's name on the server (Toxiproxy's default: ``<type>_<stream>``)."""
        return self.name or f"{self.type}_{self.stream}"

    def params(self) -> dict[str, Any]:
        """What a fault window records about this toxic."""
        return {"toxic": self.type, "stream": self.stream, "toxicity": self.toxicity, **self.attributes}


def latency(ms: int, jitter_ms: int = 0, stream: str = DOWNSTREAM) -> Toxic:
    """Every chunk delayed by ``ms`` +- ``jitter_ms``."""
    return Toxic("latency", stream, {"latency": ms, "jitter": jitter_ms})


def bandwidth(rate_kb_s: int, stream: str = DOWNSTREAM) -> Toxic:
    """At most ``rate_kb_s`` KB/s (audio at 16 kHz s16le is 32 KB/s)."""
    return Toxic("bandwidth", stream, {"rate": rate_kb_s})


def slicer(average_size: int, size_variation: int = 0, delay_us: int = 0, stream: str = DOWNSTREAM) -> Toxic:
    """TCP data cut into small packets (``average_size`` bytes), ``delay_us`` apart."""
    return Toxic("slicer", stream, {"average_size": average_size, "size_variation": size_variation, "delay": delay_us})


def reset_peer(timeout_ms: int = 0, stream: str = DOWNSTREAM) -> Toxic:
    """TCP RST after ``timeout_ms`` (0: at once), as a crashed peer or a middlebox would."""
    return Toxic("reset_peer", stream, {"timeout": timeout_ms})


def timeout(timeout_ms: int = 0, stream: str = DOWNSTREAM) -> Toxic:
    """A black hole: data stops; the connection is closed after ``timeout_ms`` (0: never)."""
    return Toxic("timeout", stream, {"timeout": timeout_ms})


def limit_data(nbytes: int, stream: str = DOWNSTREAM) -> Toxic:
    """The connection is closed once ``nbytes`` went through."""
    return Toxic("limit_data", stream, {"bytes": nbytes})


def slow_close(delay_ms: int, stream: str = DOWNSTREAM) -> Toxic:
    """The close (FIN) is held back ``delay_ms``."""
    return Toxic("slow_close", stream, {"delay": delay_ms})


# --- listen ports ------------------------------------------------------------------------------
class PortPool:
    """Listen ports for proxies, from a fixed range, each checked free before it is handed out.

    A fixed range keeps the chaos suite off other people's ports; a proxy keeps its port across
    disable/enable (``down``), which is what a client reconnecting to the same address needs.
    """

    def __init__(self, ports: Iterable[int] = PORT_RANGE, host: str = "127.0.0.1"):
        self._ports = list(ports)
        if not self._ports:
            raise ValueError("PortPool needs at least one port")
        self._host = host
        self._taken: set[int] = set()
        self._lock = threading.Lock()
        # Start at a per-process place, so two runs at once rarely reach for the same port.
        first = os.getpid() % len(self._ports)
        self._cursor = itertools.cycle([*range(first, len(self._ports)), *range(first)])

    def acquire(self) -> int:
        with self._lock:
            for _ in range(len(self._ports)):
                port = self._ports[next(self._cursor)]
                if port in self._taken or not _bindable(self._host, port):
                    continue
                self._taken.add(port)
                return port
        raise ToxiproxyError(f"no free listen port left in {self._ports[0]}-{self._ports[-1]} on {self._host}")

    def release(self, port: int) -> None:
        with self._lock:
            self._taken.discard(port)


def _bindable(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


PORTS = PortPool()


# --- the API client ----------------------------------------------------------------------------
class _RequestsWithTimeout:
    """Stands in for the ``requests`` module inside toxiproxy-python: same calls, with a timeout.

    toxiproxy-python calls ``requests.get/post/delete`` with no timeout at all; a thread waiting
    on a frozen Toxiproxy would never end (and would block interpreter shutdown).
    """

    def __init__(self, timeout_s: float):
        self.timeout_s = timeout_s

    def _call(self, method: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout_s)
        return requests.request(method, **kwargs)

    def get(self, **kwargs: Any) -> requests.Response:
        return self._call("GET", **kwargs)

    def post(self, **kwargs: Any) -> requests.Response:
        return self._call("POST", **kwargs)

    def delete(self, **kwargs: Any) -> requests.Response:
        return self._call("DELETE", **kwargs)


_tp_api.requests = _RequestsWithTimeout(DEFAULT_CALL_TIMEOUT_S)  # type: ignore[attr-defined]
_API_LOCK = threading.Lock()  # APIConsumer.host/port are class-level: one server per call


def _ok(response: requests.Response, what: str) -> requests.Response:
    if response.status_code >= 300:
        raise ToxiproxyError(f"Toxiproxy {what}: HTTP {response.status_code}: {response.text[:300]}")
    return response


class ToxiproxyClient:
    """A Toxiproxy server's API, async, every call bounded by ``timeout_s``."""

    def __init__(self, api_url: str, timeout_s: float = DEFAULT_CALL_TIMEOUT_S):
        parts = urlsplit(api_url)
        if parts.scheme != "http" or not parts.hostname or not parts.port:
            raise ValueError(f"Toxiproxy API URL must look like http://127.0.0.1:8474, got {api_url!r}")
        self.api_url = api_url.rstrip("/")
        self.host, self.port = parts.hostname, parts.port
        self.timeout_s = timeout_s

    def _sync(self, what: str, fn: Callable[[], T]) -> T:
        with _API_LOCK:
            _tp_api.APIConsumer.host, _tp_api.APIConsumer.port = self.host, self.port
            _tp_api.requests.timeout_s = self.timeout_s  # type: ignore[attr-defined]
            try:
                return fn()
            except (ProxyExists, NotFound, InvalidToxic) as exc:
                raise ToxiproxyError(f"Toxiproxy {what}: {type(exc).__name__}: {_text(exc)}") from exc
            except requests.RequestException as exc:
                raise ToxiproxyError(f"Toxiproxy {what} at {self.api_url}: {exc!r}") from exc

    async def _call(self, what: str, fn: Callable[[], T]) -> T:
        # The thread has its own socket timeout; wait_for adds a margin so the await always ends.
        try:
            return await asyncio.wait_for(asyncio.to_thread(self._sync, what, fn), self.timeout_s + 1.0)
        except TimeoutError as exc:
            raise ToxiproxyError(f"Toxiproxy {what} at {self.api_url}: no answer within {self.timeout_s:.1f} s") from exc

    # --- calls ---------------------------------------------------------------------------
    async def version(self) -> str:
        def call() -> str:
            return _ok(_tp_api.APIConsumer.get("/version"), "GET /version").text

        return await self._call("GET /version", call)

    async def create_proxy(self, name: str, upstream: str, listen: str) -> Proxy:
        return await self._call(
            f"create proxy {name!r}", lambda: Toxiproxy().create(upstream=upstream, name=name, listen=listen)
        )

    async def delete_proxy(self, name: str) -> None:
        def call() -> None:
            _tp_api.APIConsumer.delete(f"/proxies/{name}")

        await self._call(f"delete proxy {name!r}", call)

    async def add_toxic(self, proxy: Proxy, toxic: Toxic) -> None:
        await self._call(
            f"add toxic {toxic.key!r} to {proxy.name!r}",
            lambda: proxy.add_toxic(type=toxic.type, stream=toxic.stream, name=toxic.key,
                                    toxicity=toxic.toxicity, attributes=dict(toxic.attributes)),
        )

    async def remove_toxic(self, proxy: Proxy, name: str) -> None:
        await self._call(f"remove toxic {name!r} from {proxy.name!r}", lambda: proxy.destroy_toxic(name))

    async def toxics(self, proxy: Proxy) -> dict[str, dict[str, Any]]:
        """Active toxics by name, as the server reports them."""
        found = await self._call(f"list toxics of {proxy.name!r}", proxy.toxics)
        return {name: {"type": t.type, "stream": t.stream, "attributes": t.attributes} for name, t in found.items()}

    async def set_enabled(self, proxy: Proxy, enabled: bool) -> None:
        await self._call(f"{'enable' if enabled else 'disable'} proxy {proxy.name!r}",
                         proxy.enable if enabled else proxy.disable)

    async def update_toxic(self, proxy: Proxy, name: str, attributes: dict[str, int | float]) -> dict[str, Any]:
        """Change a live toxic's attributes (a latency that grows, say) without a gap.

        httpx, not toxiproxy-python: the library has no call for ``POST /proxies/{p}/toxics/{t}``.
        """
        url = f"{self.api_url}/proxies/{proxy.name}/toxics/{name}"
        try:
            async with httpx.AsyncClient(timeout=self.timeout_s) as client:
                r = await client.post(url, json={"attributes": attributes})
        except httpx.HTTPError as exc:
            raise ToxiproxyError(f"Toxiproxy update toxic {name!r}: {exc!r}") from exc
        if r.status_code != 200:
            raise ToxiproxyError(f"Toxiproxy update toxic {name!r}: HTTP {r.status_code}: {r.text[:300]}")
        return r.json()

    async def reset(self) -> None:
        """``POST /reset``: every proxy enabled, every toxic removed (on this whole server)."""

        def call() -> None:
            # toxiproxy-python's reset() returns False on failure; a rollback must not fail silently.
            _ok(_tp_api.APIConsumer.post("/reset"), "POST /reset")

        await self._call("POST /reset", call)


def _text(exc: Exception) -> str:
    arg = exc.args[0] if exc.args else ""
    return arg.decode("utf-8", "replace") if isinstance(arg, bytes) else str(arg)


# --- proxies and fault windows ----------------------------------------------------------------
def _as_histories(history: History | Sequence[History] | None) -> list[History]:
    if history is None:
        return []
    return [history] if isinstance(history, History) else list(history)


_proxy_names = itertools.count()


class FaultProxy:
    """One Toxiproxy proxy in front of one upstream (``host:port``) for one scenario."""

    def __init__(self, client: ToxiproxyClient, proxy: Proxy, port: int, upstream: str, pool: PortPool):
        self.client = client
        self.proxy = proxy
        self.port = port
        self.upstream = upstream
        self._pool = pool
        self.closed = False

    @property
    def name(self) -> str:
        return self.proxy.name

    @property
    def listen(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def http_url(self) -> str:
        return f"http://{self.listen}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.listen}"

    def _open_windows(self, kind: str, params: dict[str, Any], histories: list[History]) -> list[FaultWindow]:
        return [h.start_fault(kind, target=f"toxiproxy:{self.name}", **params) for h in histories]

    @contextlib.asynccontextmanager
    async def toxic(self, toxic: Toxic | Sequence[Toxic],
                    history: History | Sequence[History] | None = None) -> AsyncIterator[FaultWindow | None]:
        """The toxic (or several at once, one fault: a black hole both ways, say) is active inside
        the block; one window is recorded; every toxic is removed in finally.

        If a removal fails, the whole proxy is rolled back (every toxic removed, enabled) so a
        broken call never leaves a fault behind.
        """
        added, windows = await self.add_toxics(toxic, history)
        try:
            yield windows[0] if windows else None
        finally:
            await self.remove_toxics(added, windows)

    async def add_toxics(self, toxic: Toxic | Sequence[Toxic], history: History | Sequence[History] | None = None,
                         kind: str | None = None) -> tuple[list[Toxic], list[FaultWindow]]:
        """Add the toxics (one fault) and open one window per history (``kind``: the toxic's type
        unless given). Whatever was added is removed again if a later one fails. The caller must
        hand the result to :meth:`remove_toxics` (the toxic context manager does)."""
        toxics = [toxic] if isinstance(toxic, Toxic) else list(toxic)
        if not toxics:
            raise ValueError("FaultProxy.toxic needs at least one toxic")
        if len({t.key for t in toxics}) != len(toxics):
            raise ValueError(f"toxic names must differ on one proxy: {[t.key for t in toxics]}")
        params = toxics[0].params()
        if len(toxics) > 1:
            params = {**params, "stream": "+".join(t.stream for t in toxics), "toxics": [t.params() for t in toxics]}
        added: list[Toxic] = []
        try:
            for t in toxics:
                await self.client.add_toxic(self.proxy, t)
                added.append(t)
        except BaseException:
            await self.remove_toxics(added, [])
            raise
        return added, self._open_windows(kind or toxics[0].type, params, _as_histories(history))

    async def remove_toxics(self, added: Sequence[Toxic], windows: Sequence[FaultWindow]) -> None:
        """Remove what :meth:`add_toxics` added and end its windows; on a failed removal the proxy
        is rolled back (every toxic removed) and the error raised."""
        try:
            for t in added:
                await self.client.remove_toxic(self.proxy, t.key)
        except ToxiproxyError:
            await self.rollback()
            raise
        finally:
            for w in windows:
                History.end_fault(w)

    @contextlib.asynccontextmanager
    async def down(self, history: History | Sequence[History] | None = None) -> AsyncIterator[FaultWindow | None]:
        """The proxy is disabled inside the block: open connections drop, new ones are refused."""
        histories = _as_histories(history)
        await self.client.set_enabled(self.proxy, False)
        windows = self._open_windows("down", {}, histories)
        try:
            yield windows[0] if windows else None
        finally:
            try:
                await self.client.set_enabled(self.proxy, True)
            finally:
                for w in windows:
                    History.end_fault(w)

    async def apply(self, toxic: Toxic | Sequence[Toxic], duration_s: float, history: History | Sequence[History] | None = None) -> None:
        """Add ``toxic`` for ``duration_s`` seconds, then remove it."""
        async with self.toxic(toxic, history):
            await asyncio.sleep(duration_s)

    async def take_down(self, duration_s: float, history: History | Sequence[History] | None = None) -> None:
        async with self.down(history):
            await asyncio.sleep(duration_s)

    async def update(self, toxic: Toxic, **attributes: int | float) -> dict[str, Any]:
        """Change an active toxic's attributes in place (validated against its type)."""
        Toxic(toxic.type, toxic.stream, attributes, toxic.toxicity, toxic.name)
        return await self.client.update_toxic(self.proxy, toxic.key, attributes)

    async def active_toxics(self) -> dict[str, dict[str, Any]]:
        return await self.client.toxics(self.proxy)

    async def rollback(self) -> None:
        """This proxy only: every toxic removed, enabled again (other proxies are left alone)."""
        for name in await self.client.toxics(self.proxy):
            await self.client.remove_toxic(self.proxy, name)
        await self.client.set_enabled(self.proxy, True)

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            await self.client.delete_proxy(self.name)
        finally:
            self._pool.release(self.port)


class ToxiproxyLab:
    """The proxies of one test on one Toxiproxy server; ends with ``POST /reset`` whatever happened.

    Use as ``async with ToxiproxyLab(api_url) as lab: proxy = await lab.proxy(upstream)``.
    """

    def __init__(self, api_url: str | None = None, *, pool: PortPool = PORTS, timeout_s: float = DEFAULT_CALL_TIMEOUT_S,
                 prefix: str = "chaos", allow_remote: bool = False):
        url = api_url or os.environ.get("TOXIPROXY_URL")
        if not url:
            raise ValueError("ToxiproxyLab needs the Toxiproxy API URL (argument or TOXIPROXY_URL)")
        # Proxies listen on 127.0.0.1 of the Toxiproxy host: only a local Toxiproxy makes sense.
        require_loopback(url, allow_remote)
        self.allow_remote = allow_remote
        self.client = ToxiproxyClient(url, timeout_s)
        self.pool = pool
        self.prefix = prefix
        self.proxies: list[FaultProxy] = []

    async def proxy(self, upstream: str, name: str | None = None) -> FaultProxy:
        """A new proxy listening on a pooled loopback port, forwarding to ``upstream`` (host:port or URL)."""
        upstream = _host_port(upstream)
        require_loopback(f"tcp://{upstream}", self.allow_remote)
        port = self.pool.acquire()
        name = name or f"{self.prefix}-{os.getpid()}-{next(_proxy_names)}"
        try:
            proxy = await self.client.create_proxy(name, upstream, f"127.0.0.1:{port}")
        except BaseException:
            self.pool.release(port)
            raise
        fp = FaultProxy(self.client, proxy, port, upstream, self.pool)
        self.proxies.append(fp)
        return fp

    async def close(self) -> None:
        """``/reset`` first (the rollback), then delete this lab's proxies; every step is tried."""
        errors: list[BaseException] = []
        try:
            await self.client.reset()
        except ToxiproxyError as exc:
            errors.append(exc)
        for fp in self.proxies:
            try:
                await fp.close()
            except ToxiproxyError as exc:
                errors.append(exc)
        self.proxies.clear()
        if errors:
            raise ToxiproxyError("; ".join(str(e) for e in errors))

    async def __aenter__(self) -> ToxiproxyLab:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def _host_port(upstream: str) -> str:
    """``http://127.0.0.1:8700`` or ``127.0.0.1:8700`` -> ``127.0.0.1:8700``."""
    if "://" in upstream:
        parts = urlsplit(upstream)
        if not parts.hostname or not parts.port:
            raise ValueError(f"upstream URL needs a host and a port, got {upstream!r}")
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        return f"{host}:{parts.port}"
    host, sep, port = upstream.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"upstream must be host:port or a URL, got {upstream!r}")
    return upstream


__all__ = [
    "DOWNSTREAM", "UPSTREAM", "FaultProxy", "PortPool", "Toxic", "ToxiproxyClient", "ToxiproxyError",
    "ToxiproxyLab", "bandwidth", "latency", "limit_data", "reset_peer", "slicer", "slow_close", "timeout",
]

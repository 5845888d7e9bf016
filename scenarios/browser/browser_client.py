"""The web client under test, as the browser suite sees it: a config file and a page driver.

``client.toml`` (next to this file, or the file named by ``HARNESS_BROWSER_CLIENT``) says where
the recording page is and which selectors and texts to read; :class:`WebClient` drives a page by
them. Nothing here is specific to the reference server's /live page except the defaults.
"""

from __future__ import annotations

import os
import re
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

from harness.browser import BrowserSession, LiveOptions, redact
from harness.errors import UsageError
from harness.safety import require_loopback

CLIENT_ENV = "HARNESS_BROWSER_CLIENT"
DEFAULT_CONFIG = Path(__file__).resolve().parent / "client.toml"

SELECTOR_KEYS = ("start", "stop", "status", "chunks", "partial", "finals", "error")
STATUS_KEYS = ("offline", "connecting", "connected", "reconnecting")


class ClientConfigError(UsageError, ValueError):
    """The client config is missing a key or has a bad value; the message names file and key."""


@dataclass(frozen=True)
class SessionPageConfig:
    url: re.Pattern[str]
    finals: str
    result: str
    result_state_attribute: str
    steps: tuple[str, ...]
    done: str | None = None


@dataclass(frozen=True)
class ClientConfig:
    source: Path
    name: str
    path: str
    query_options: bool
    protocol: str
    selectors: dict[str, str]
    status: dict[str, str]
    microphone_denied: str
    session_page: SessionPageConfig
    ready: str | None = None
    session_create: re.Pattern[str] | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def page_url(self, base_url: str, options: LiveOptions | None = None, allow_remote: bool = False) -> str:
        """The recording page's address on ``base_url``, with the /live query options if it takes them."""
        url = urljoin(base_url.rstrip("/") + "/", self.path.lstrip("/")) if "://" not in self.path else self.path
        require_loopback(url, allow_remote)
        if options is not None and self.query_options:
            query = options.query()
            if query:
                url += ("&" if urlsplit(url).query else "?") + query
        return url


def _table(data: dict[str, Any], key: str, source: Path) -> dict[str, Any]:
    value = data.get(key)
    if not isinstance(value, dict):
        raise ClientConfigError(f"{source}: missing table [{key}]")
    return value


def _string(table: dict[str, Any], key: str, where: str, source: Path, required: bool = True) -> str | None:
    value = table.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ClientConfigError(f"{source}: [{where}] {key} must be a non-empty string, got {value!r}")
    return value


def load_config(path: str | os.PathLike[str] | None = None) -> ClientConfig:
    """The client config: ``path``, else ``$HARNESS_BROWSER_CLIENT``, else the /live defaults."""
    source = Path(path or os.environ.get(CLIENT_ENV) or DEFAULT_CONFIG)
    if not source.is_file():
        raise ClientConfigError(f"browser client config {source} does not exist (set by {CLIENT_ENV} or the default)")
    try:
        data = tomllib.loads(source.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ClientConfigError(f"{source}: not valid TOML: {exc}") from exc
    client = _table(data, "client", source)
    selectors = _table(data, "selectors", source)
    status = _table(data, "status", source)
    messages = _table(data, "messages", source)
    page = _table(data, "session_page", source)
    query_options = client.get("query_options", False)
    if not isinstance(query_options, bool):
        raise ClientConfigError(f"{source}: [client] query_options must be true or false, got {query_options!r}")
    pattern = _string(page, "url", "session_page", source)
    try:
        url_re = re.compile(pattern)  # type: ignore[arg-type]
    except re.error as exc:
        raise ClientConfigError(f"{source}: [session_page] url is not a regular expression: {exc}") from exc
    if url_re.groups < 1:
        raise ClientConfigError(f"{source}: [session_page] url needs a group that captures the session id")
    create = _string(client, "session_create", "client", source, required=False)
    try:
        create_re = re.compile(create) if create else None
    except re.error as exc:
        raise ClientConfigError(f"{source}: [client] session_create is not a regular expression: {exc}") from exc
    steps = page.get("steps")
    if not isinstance(steps, list) or not steps or not all(isinstance(s, str) and s for s in steps):
        raise ClientConfigError(f"{source}: [session_page] steps must be a non-empty list of names, got {steps!r}")
    result = _string(page, "result", "session_page", source)
    if "{step}" not in result:  # type: ignore[operator]
        raise ClientConfigError(f"{source}: [session_page] result must contain {{step}}, got {result!r}")
    return ClientConfig(
        source=source,
        name=_string(client, "name", "client", source),  # type: ignore[arg-type]
        path=_string(client, "path", "client", source),  # type: ignore[arg-type]
        ready=_string(client, "ready", "client", source, required=False),
        query_options=query_options,
        session_create=create_re,
        protocol=_string(client, "protocol", "client", source, required=False) or "reference",
        selectors={k: _string(selectors, k, "selectors", source) for k in SELECTOR_KEYS},  # type: ignore[misc]
        status={k: _string(status, k, "status", source) for k in STATUS_KEYS},  # type: ignore[misc]
        microphone_denied=_string(messages, "microphone_denied", "messages", source),  # type: ignore[arg-type]
        session_page=SessionPageConfig(
            url=url_re,
            finals=_string(page, "finals", "session_page", source),  # type: ignore[arg-type]
            result=result,  # type: ignore[arg-type]
            result_state_attribute=_string(page, "result_state_attribute", "session_page", source),  # type: ignore[arg-type]
            steps=tuple(steps),
            done=_string(page, "done", "session_page", source, required=False),
        ),
        raw=data,
    )


# --- the page ------------------------------------------------------------------------------------
_STATUS_WATCH_JS = """
(selector) => {
  const report = () => {
    const el = document.querySelector(selector);
    const text = el ? el.textContent.trim() : null;
    if (text !== null && text !== window.__harnessLastStatus) {
      window.__harnessLastStatus = text;
      window.__harnessStatus(text);
    }
  };
  const start = () => {
    report();
    new MutationObserver(report).observe(document.documentElement, { subtree: true, childList: true, characterData: true });
  };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
}
"""


# Reports every WebSocket's handshake time and close code from inside the page (Playwright's
# WebSocket events have neither), so the history read off the wire has what a driver records:
# connect latency, and the close (1000 at the end, 1006 at a cut, 1001 at SIGTERM).
_SOCKET_WATCH_JS = """
(() => {
  const Native = window.WebSocket;
  if (!Native || Native.__harnessWatched) return;
  class Watched extends Native {
    constructor(url, protocols) {
      super(url, protocols);
      const where = this.url;
      const t0 = performance.now();
      const report = (...args) => { try { window.__harnessSocket(...args); } catch (err) {} };
      this.addEventListener("open", () => report("open", where, performance.now() - t0, ""));
      this.addEventListener("close", (event) => report("close", where, event.code, event.reason || ""));
    }
  }
  Watched.__harnessWatched = true;
  window.WebSocket = Watched;
})();
"""


@dataclass
class SocketEvent:
    t_ns: int
    kind: str  # "open" (value: handshake ms, measured in the page) | "close" (value: close code)
    url: str  # access token redacted
    value: float
    reason: str = ""


@dataclass
class HttpCall:
    t_ns: int  # when the answer was complete
    method: str
    path: str  # path and query, access token redacted
    status: int | None
    latency_ms: float | None


class WebClient:
    """One page of the client under test, driven and read by the configured selectors.

    Every status change of the status element is recorded (``status_log``, with monotonic
    times) from the page itself, so a state that lasts a few milliseconds is not missed.
    """

    def __init__(self, browser: BrowserSession, config: ClientConfig, base_url: str, allow_remote: bool = False):
        self.browser = browser
        self.config = config
        self.base_url = base_url.rstrip("/")
        self.allow_remote = allow_remote
        self.sel = config.selectors
        self.status_log: list[tuple[int, str]] = []
        self.sockets: list[SocketEvent] = []
        self.http: list[HttpCall] = []
        self.session_id: str | None = None
        self._watching = False

    @property
    def page(self):
        return self.browser.page

    async def _watch_status(self) -> None:
        if self._watching:
            return
        self._watching = True
        await self.browser.context.expose_function("__harnessStatus", self._on_status)
        selector = self.sel["status"]
        await self.browser.context.add_init_script(script=f"({_STATUS_WATCH_JS})({selector!r})")
        await self.browser.context.expose_function("__harnessSocket", self._on_socket)
        await self.browser.context.add_init_script(script=_SOCKET_WATCH_JS)
        self.browser.context.on("requestfinished", self._on_request)
        self.browser.context.on("requestfailed", self._on_request)

    def _on_status(self, text: str) -> None:
        self.status_log.append((time.monotonic_ns(), text))

    def _on_socket(self, kind: str, url: str, value: float, reason: str) -> None:
        self.sockets.append(SocketEvent(time.monotonic_ns(), kind, redact(url), float(value), str(reason)))

    async def _on_request(self, request) -> None:
        """The page's own calls (fetch/XHR), timed by the browser: request start -> response end."""
        if request.resource_type not in ("fetch", "xhr"):
            return
        t_ns = time.monotonic_ns()
        parts = urlsplit(request.url)
        path = redact(parts.path + (f"?{parts.query}" if parts.query else ""))
        status = latency = None
        if request.failure is None:
            try:
                response = await request.response()
                status = response.status if response else None
            except Exception:
                status = None  # the page navigated away while the answer was read
            end = (request.timing or {}).get("responseEnd", -1)
            latency = round(end, 3) if end is not None and end >= 0 else None
        self.http.append(HttpCall(t_ns, request.method, path, status, latency))

    def statuses(self) -> list[str]:
        """Every status text shown, in order, with repeats of the same text folded."""
        out: list[str] = []
        for _, text in self.status_log:
            if not out or out[-1] != text:
                out.append(text)
        return out

    async def open(self, options: LiveOptions | None = None) -> None:
        await self._watch_status()
        await self.page.goto(self.config.page_url(self.base_url, options, self.allow_remote))
        await self.page.wait_for_selector(self.config.ready or self.sel["start"])

    async def start(self, tap: bool = False) -> None:
        if tap:
            await self.page.tap(self.sel["start"])
        else:
            await self.page.click(self.sel["start"])

    async def stop(self, tap: bool = False) -> None:
        if tap:
            await self.page.tap(self.sel["stop"])
        else:
            await self.page.click(self.sel["stop"])

    async def status(self) -> str:
        return (await self.page.text_content(self.sel["status"]) or "").strip()

    async def wait_status(self, *texts: str, timeout_s: float = 15.0) -> str:
        """Wait until the status is one of ``texts``; returns the one shown."""
        await self.page.wait_for_function(
            "([sel, texts]) => { const el = document.querySelector(sel);"
            " return !!el && texts.includes(el.textContent.trim()); }",
            arg=[self.sel["status"], list(texts)], timeout=timeout_s * 1000,
        )
        return await self.status()

    async def wait_status_not(self, text: str, timeout_s: float = 15.0) -> str:
        await self.page.wait_for_function(
            "([sel, text]) => { const el = document.querySelector(sel); return !!el && el.textContent.trim() !== text; }",
            arg=[self.sel["status"], text], timeout=timeout_s * 1000,
        )
        return await self.status()

    async def chunks(self) -> int:
        text = (await self.page.text_content(self.sel["chunks"]) or "").strip()
        match = re.search(r"\d+", text.replace(",", ""))
        return int(match.group()) if match else 0

    async def wait_chunks(self, at_least: int, timeout_s: float = 15.0) -> int:
        await self.page.wait_for_function(
            "([sel, n]) => { const el = document.querySelector(sel);"
            " const m = el && el.textContent.replace(/,/g, '').match(/\\d+/); return !!m && Number(m[0]) >= n; }",
            arg=[self.sel["chunks"], at_least], timeout=timeout_s * 1000,
        )
        return await self.chunks()

    async def finals(self) -> list[str]:
        return [t.strip() for t in await self.page.locator(self.sel["finals"]).all_text_contents()]

    async def wait_finals(self, at_least: int = 1, timeout_s: float = 30.0) -> list[str]:
        await self.page.wait_for_function(
            "([sel, n]) => document.querySelectorAll(sel).length >= n",
            arg=[self.sel["finals"], at_least], timeout=timeout_s * 1000,
        )
        return await self.finals()

    async def error(self) -> str:
        el = self.page.locator(self.sel["error"])
        if not await el.count() or not await el.first.is_visible():
            return ""
        return (await el.first.text_content() or "").strip()

    async def wait_error(self, timeout_s: float = 15.0) -> str:
        await self.page.locator(self.sel["error"]).first.wait_for(state="visible", timeout=timeout_s * 1000)
        return await self.error()

    # --- after stop: the session page ---------------------------------------------------------
    async def wait_session_page(self, timeout_s: float = 60.0) -> str:
        """Wait for the client to open the session page; returns the session id."""
        pattern = self.config.session_page.url
        await self.page.wait_for_url(pattern, timeout=timeout_s * 1000)
        match = pattern.search(self.page.url)
        assert match is not None  # wait_for_url matched it
        self.session_id = match.group(1)
        return self.session_id

    async def wait_results(self, timeout_s: float = 30.0) -> dict[str, str]:
        """On the session page: every step's result element; returns step -> its state."""
        sp = self.config.session_page
        selectors = [sp.result.replace("{step}", s) for s in sp.steps]
        await self.page.wait_for_function(
            "sels => sels.every(s => document.querySelector(s))", arg=selectors, timeout=timeout_s * 1000,
        )
        out = {}
        for step, selector in zip(sp.steps, selectors):
            out[step] = await self.page.get_attribute(selector, sp.result_state_attribute) or ""
        if sp.done:
            await self.page.wait_for_selector(sp.done, timeout=timeout_s * 1000)
        return out

    async def results_now(self) -> dict[str, str | None]:
        """Each step's state on the session page right now (None: not shown)."""
        sp = self.config.session_page
        out: dict[str, str | None] = {}
        for step in sp.steps:
            loc = self.page.locator(sp.result.replace("{step}", step))
            out[step] = (await loc.first.get_attribute(sp.result_state_attribute) or "") if await loc.count() else None
        return out

    async def session_finals(self) -> list[str]:
        return [t.strip() for t in await self.page.locator(self.config.session_page.finals).all_text_contents()]

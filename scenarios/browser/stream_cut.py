"""Cutting the page's stream in the middle of a recording, at the network, for a few seconds.

Two ways, one interface (``base_url`` to load the page from, ``install``, ``cut``, ``close``):

- :class:`ToxiproxyCut` (preferred): the page is loaded through a Toxiproxy proxy in front of the
  target, so its stream, which the page opens on its own origin, goes through it too. The cut
  disables the proxy: open connections drop (the page sees 1006), new ones are refused, as when
  a Wi-Fi link or a load balancer goes away.
- :class:`RouteCut` (when there is no Toxiproxy): Playwright's ``page.route_web_socket`` carries
  every WebSocket of the page; the cut closes both sides and refuses new sockets for a while.
  It runs inside the browser, so the page sees a close frame (1011) rather than a dead TCP link.

``context.set_offline`` is not used: it leaves open WebSockets alone, so nothing would be cut.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from harness.faults.toxiproxy import PortPool, ToxiproxyLab
from harness.history import History

BROWSER_PORTS = PortPool(range(19500, 19600))  # the browser suite's listen ports
ROUTE_CUT_CODE = 1011  # what the page sees when the routed link is cut


class ToxiproxyCut:
    layer = "toxiproxy"

    def __init__(self, api_url: str, upstream: str):
        self.api_url = api_url
        self.upstream = upstream
        self.lab: ToxiproxyLab | None = None
        self.proxy = None

    async def open(self) -> ToxiproxyCut:
        self.lab = ToxiproxyLab(self.api_url, pool=BROWSER_PORTS, prefix="browser")
        self.proxy = await self.lab.proxy(self.upstream)
        return self

    @property
    def base_url(self) -> str:
        assert self.proxy is not None, "open() first"
        return self.proxy.http_url

    async def install(self, run: Any) -> None:
        """Nothing to do in the page: its traffic goes through the proxy already."""

    async def cut(self, duration_s: float, history: History) -> None:
        assert self.proxy is not None, "open() first"
        await self.proxy.take_down(duration_s, history)

    async def close(self) -> None:
        if self.lab is not None:
            await self.lab.close()
            self.lab = None


class RouteCut:
    layer = "page route"

    def __init__(self, upstream: str):
        self.base_url = upstream.rstrip("/")
        self.links: list[tuple[Any, Any]] = []  # (page side, server side) of every open socket
        self.down = False
        self.refused = 0

    async def open(self) -> RouteCut:
        return self

    async def install(self, run: Any) -> None:
        await run.browser.page.route_web_socket(re.compile(r"^wss?://"), self._route)

    async def _route(self, ws: Any) -> None:
        if self.down:
            self.refused += 1
            await ws.close(code=ROUTE_CUT_CODE, reason="stream cut")
            return
        self.links.append((ws, ws.connect_to_server()))

    async def cut(self, duration_s: float, history: History) -> None:
        with history.fault("down", target="page-route", code=ROUTE_CUT_CODE):
            self.down = True
            links, self.links = self.links, []
            for page_side, server_side in links:
                for side in (server_side, page_side):
                    try:
                        await side.close(code=ROUTE_CUT_CODE, reason="stream cut")
                    except Exception:
                        pass  # that side was already closed
            await asyncio.sleep(duration_s)
            self.down = False

    async def close(self) -> None:
        self.links.clear()

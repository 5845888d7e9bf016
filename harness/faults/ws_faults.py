"""The WebSocket proxy layer's faults: message rules, and what vendors do.

Each is a dataclass of its parameters that makes one :class:`~harness.faults.wsproxy.Rule`
(``make_rule``). Through the fault interface (``start(ctx)``) the rule goes on the whole proxy,
``ctx.layer("wsproxy")``; in a schedule run by the proxy itself (``WsFaultProxy(schedule=...)``,
``harness faults``) a fresh rule goes on each targeted connection when its trigger is reached.

``count = 0`` means every matching message from the ``nth`` on (TOML has no null).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from harness.faults import vendors
from harness.faults import wsproxy as wsp
from harness.faults.base import Fault, FaultContext, check_field_types

Direction = Literal["upstream", "downstream"]


class WsFault(Fault):
    layer: ClassVar[str] = "wsproxy"

    def __post_init__(self) -> None:
        check_field_types(self)
        self.make_rule()  # the rule's own checks (a close code that cannot be sent …), before anything runs

    def make_rule(self) -> wsp.Rule:
        rule = self._rule()
        rule.window_kind = self.name
        return rule

    def _rule(self) -> wsp.Rule:
        raise NotImplementedError

    async def _start(self, ctx: FaultContext) -> None:
        proxy: wsp.WsFaultProxy = ctx.layer(self.layer, self.name)
        rule = self.make_rule()
        rule.sinks = list(ctx.histories)
        self._state()["rule"], self._state()["proxy"] = rule, proxy
        proxy.add(rule)

    async def _stop(self) -> None:
        self._state()["proxy"].remove(self._state()["rule"])

    @property
    def windows(self) -> list[Any]:
        rule = self._state().get("rule")
        return rule.windows if rule is not None else []

    @property
    def rule(self) -> wsp.Rule | None:
        """The rule once started (its ``fired`` count, say)."""
        return self._state().get("rule")


def _match(kind: str, nth: int, count: int, where: dict[str, Any] | None = None, final: bool = False) -> wsp.Match:
    if count < 0:
        raise ValueError(f"count must be >= 0 (0: every one from the nth), got {count}")
    return wsp.Match(kind=kind or None, where=dict(where or {}), nth=nth, count=count or None, final=final)


# --- message rules ------------------------------------------------------------------------------
@dataclass
class WsDrop(WsFault):
    """Chosen messages are not delivered. ``kind``: ``binary``, a JSON ``type`` (``final``,
    ``Results`` …) or empty for any."""

    name: ClassVar[str] = "ws_drop"
    direction: Direction = "downstream"
    kind: str = ""
    nth: int = 1
    count: int = 1
    where: dict[str, Any] = field(default_factory=dict)

    def _rule(self) -> wsp.Rule:
        return wsp.Drop(self.direction, _match(self.kind, self.nth, self.count, self.where))


@dataclass
class WsDuplicate(WsFault):
    """Chosen messages delivered ``copies`` extra times, back to back."""

    name: ClassVar[str] = "ws_duplicate"
    direction: Direction = "downstream"
    kind: str = ""
    nth: int = 1
    count: int = 1
    copies: int = 1
    where: dict[str, Any] = field(default_factory=dict)

    def _rule(self) -> wsp.Rule:
        return wsp.Duplicate(self.direction, _match(self.kind, self.nth, self.count, self.where), self.copies)


@dataclass
class WsDelay(WsFault):
    """Chosen messages wait ``delay_ms`` (and everything behind them waits too); ``final``: of the
    chosen kind, only finals of whichever protocol."""

    name: ClassVar[str] = "ws_delay"
    direction: Direction = "downstream"
    kind: str = ""
    nth: int = 1
    count: int = 1
    delay_ms: int = 500
    final: bool = False  # only finals, of whichever protocol (with kind empty)

    def _rule(self) -> wsp.Rule:
        return wsp.Delay(self.direction, _match(self.kind, self.nth, self.count, final=self.final), self.delay_ms / 1000)


@dataclass
class WsReorder(WsFault):
    """The ``nth`` chosen message held until ``after`` later ones went through."""

    name: ClassVar[str] = "ws_reorder"
    direction: Direction = "upstream"
    kind: str = ""
    nth: int = 1
    count: int = 1
    after: int = 1
    max_hold_ms: int = 5000

    def _rule(self) -> wsp.Rule:
        return wsp.Reorder(self.direction, _match(self.kind, self.nth, self.count), self.after, self.max_hold_ms / 1000)


@dataclass
class WsHold(WsFault):
    """Every chosen message held from the first one on for ``hold_ms``, then all delivered."""

    name: ClassVar[str] = "ws_hold"
    direction: Direction = "downstream"
    kind: str = ""
    hold_ms: int = 2000

    def _rule(self) -> wsp.Rule:
        return wsp.HoldBack(self.direction, _match(self.kind, 1, 0), self.hold_ms / 1000)


@dataclass
class WsClose(WsFault):
    """At the ``nth`` chosen message the client is closed with ``code`` (the message not delivered
    unless ``deliver``)."""

    name: ClassVar[str] = "ws_close"
    code: int = 1011
    reason: str = ""
    direction: Direction = "downstream"
    kind: str = ""
    nth: int = 1
    deliver: bool = False

    def _rule(self) -> wsp.Rule:
        return wsp.CloseWith(self.code, self.reason, self.direction, _match(self.kind, self.nth, 1), self.deliver)


@dataclass
class WsNoPong(WsFault):
    """The client goes silent: pings unanswered (and, with ``silence_client``, nothing forwarded)."""

    name: ClassVar[str] = "ws_no_pong"
    silence_client: bool = True

    def _rule(self) -> wsp.Rule:
        return wsp.StopAnsweringPings(self.silence_client)


# --- what vendors do ----------------------------------------------------------------------------
def _preset(presets: dict[str, Any], name: str, given: dict[str, Any]) -> Any:
    """The preset ``name`` of ``presets``; ValueError naming the known ones, or the fields given
    beside it (a preset sets them itself)."""
    found = presets.get(name)
    if found is None:
        raise ValueError(f"unknown preset {name!r}; known presets: {', '.join(sorted(presets))}")
    clashing = [field for field, value in given.items() if value]
    if clashing:
        raise ValueError(f"preset {name!r} sets {', '.join(given)} itself: give the preset or those "
                         f"(also given: {', '.join(clashing)})")
    return found


@dataclass
class VendorError(WsFault):
    """The vendor fails mid-stream: its error message (if it sends one), then its close code and
    reason. ``preset`` names one of :data:`harness.faults.vendors.ERROR_PRESETS`; or give
    ``code``, ``reason`` and ``message`` (a JSON text frame) yourself."""

    name: ClassVar[str] = "vendor_error"
    preset: str = ""
    code: int = 0
    reason: str = ""
    message: str = ""

    def _rule(self) -> wsp.Rule:
        if self.preset:
            p = _preset(vendors.ERROR_PRESETS, self.preset,
                        {"code": self.code, "reason": self.reason, "message": self.message})
            return wsp.SendThenClose(p.code, p.reason, p.frames())
        if not self.code:
            raise ValueError("vendor_error needs a preset, or a code (and a reason, a message)")
        if self.message:
            try:
                json.loads(self.message)
            except ValueError as exc:
                raise ValueError(f"message must be a JSON text frame: {exc}") from None
        return wsp.SendThenClose(self.code, self.reason, [self.message] if self.message else [])


@dataclass
class AcceptClose(WsFault):
    """The handshake accepted, then at once closed ``code`` (with ``target = { first = N }``: the
    first N connections fail, the next succeeds)."""

    name: ClassVar[str] = "accept_close"
    code: int = 1011
    reason: str = "accepted, then closed"

    def _rule(self) -> wsp.Rule:
        return wsp.SendThenClose(self.code, self.reason)


@dataclass
class RefuseHandshake(WsFault):
    """The handshake refused: ``preset`` (one of :data:`harness.faults.vendors.REFUSAL_PRESETS`:
    the vendor's status, body and headers) or ``status`` with ``body``; ``retry_after`` sets (or
    overrides) the ``Retry-After`` header."""

    name: ClassVar[str] = "refuse_handshake"
    preset: str = ""
    status: int = 0
    body: str = ""
    retry_after: str = ""

    def _rule(self) -> wsp.Rule:
        if self.preset:
            p = _preset(vendors.REFUSAL_PRESETS, self.preset, {"status": self.status, "body": self.body})
            status, body, headers = p.status, json.dumps(p.body).encode(), dict(p.headers)
        else:
            if not self.status:
                raise ValueError("refuse_handshake needs a preset or a status")
            status, body, headers = self.status, self.body.encode(), {}
        if self.retry_after:
            headers["Retry-After"] = self.retry_after
        return wsp.RefuseHandshake(status, body, headers)


@dataclass
class StallResults(WsFault):
    """The socket stays open, nothing more comes from the server."""

    name: ClassVar[str] = "stall"

    def _rule(self) -> wsp.Rule:
        return wsp.Stall()


@dataclass
class CutConnection(WsFault):
    """The TCP connection cut with no close frame (the client sees 1006)."""

    name: ClassVar[str] = "cut"

    def _rule(self) -> wsp.Rule:
        return wsp.Cut()


@dataclass
class DropFinal(WsFault):
    """The ``nth`` final (of any protocol) not delivered, and ``count`` - 1 after it (0: every one)."""

    name: ClassVar[str] = "drop_final"
    nth: int = 1
    count: int = 1

    def _rule(self) -> wsp.Rule:
        return wsp.Drop(wsp.DOWNSTREAM, _match("", self.nth, self.count, final=True))


@dataclass
class DuplicateFinal(WsFault):
    """The ``nth`` final (of any protocol) delivered ``copies`` extra times."""

    name: ClassVar[str] = "duplicate_final"
    nth: int = 1
    copies: int = 1

    def _rule(self) -> wsp.Rule:
        return wsp.Duplicate(wsp.DOWNSTREAM, _match("", self.nth, 1, final=True), self.copies)


__all__ = ["AcceptClose", "CutConnection", "DropFinal", "DuplicateFinal", "RefuseHandshake", "StallResults",
           "VendorError", "WsClose", "WsDelay", "WsDrop", "WsDuplicate", "WsFault", "WsHold", "WsNoPong", "WsReorder"]

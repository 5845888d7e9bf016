"""The Toxiproxy layer's faults: one dataclass per toxic (and the proxy taken down).

Each acts on ``ctx.layer("toxiproxy")``, a :class:`~harness.faults.toxiproxy.FaultProxy`. The
toxics are added at ``start`` and removed at ``stop``; a failed removal rolls the proxy back.
``stream`` is ``downstream`` (server -> client), ``upstream`` or ``both`` (two toxics, one fault).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from harness.faults import toxiproxy as tp
from harness.faults.base import Fault, FaultContext, check_field_types

Stream = Literal["downstream", "upstream", "both"]


class ToxicFault(Fault):
    """A Toxiproxy toxic: subclasses say which (``toxic``) and map their fields to its attributes."""

    layer: ClassVar[str] = "toxiproxy"
    toxic: ClassVar[str] = ""
    stream: str

    def __post_init__(self) -> None:
        check_field_types(self)
        self.toxics()  # Toxic checks every attribute against Toxiproxy's documented ones

    def attributes(self) -> dict[str, int | float]:
        raise NotImplementedError

    def toxics(self) -> list[tp.Toxic]:
        streams = tp.STREAMS if self.stream == "both" else (self.stream,)
        return [tp.Toxic(self.toxic, s, self.attributes()) for s in streams]

    async def _start(self, ctx: FaultContext) -> None:
        proxy: tp.FaultProxy = ctx.layer(self.layer, self.name)
        self._state()["proxy"] = proxy
        added, windows = await proxy.add_toxics(self.toxics(), ctx.histories, kind=self.name)
        self._state()["added"] = added
        self.windows.extend(windows)

    async def _stop(self) -> None:
        state = self._state()
        await state["proxy"].remove_toxics(state.get("added", []), self.windows)


@dataclass
class Latency(ToxicFault):
    """Every chunk delayed by ``latency_ms`` +- ``jitter_ms``."""

    name: ClassVar[str] = "latency"
    toxic: ClassVar[str] = "latency"
    latency_ms: int = 300
    jitter_ms: int = 0
    stream: Stream = "downstream"

    def attributes(self) -> dict[str, int | float]:
        return {"latency": self.latency_ms, "jitter": self.jitter_ms}


@dataclass
class Bandwidth(ToxicFault):
    """At most ``rate_kb_s`` KB/s (16 kHz s16le audio is 32 KB/s)."""

    name: ClassVar[str] = "bandwidth"
    toxic: ClassVar[str] = "bandwidth"
    rate_kb_s: int = 16
    stream: Stream = "upstream"

    def attributes(self) -> dict[str, int | float]:
        return {"rate": self.rate_kb_s}


@dataclass
class Slicer(ToxicFault):
    """TCP data cut into packets of ``average_size`` +- ``size_variation`` bytes, ``delay_us`` apart."""

    name: ClassVar[str] = "slicer"
    toxic: ClassVar[str] = "slicer"
    average_size: int = 64
    size_variation: int = 0
    delay_us: int = 0
    stream: Stream = "downstream"

    def attributes(self) -> dict[str, int | float]:
        return {"average_size": self.average_size, "size_variation": self.size_variation, "delay": self.delay_us}


@dataclass
class ResetPeer(ToxicFault):
    """TCP RST after ``timeout_ms`` (0: at once), as a crashed peer or a middlebox would."""

    name: ClassVar[str] = "reset_peer"
    toxic: ClassVar[str] = "reset_peer"
    timeout_ms: int = 0
    stream: Stream = "upstream"

    def attributes(self) -> dict[str, int | float]:
        return {"timeout": self.timeout_ms}


@dataclass
class Blackhole(ToxicFault):
    """Toxiproxy's ``timeout``: data stops; the connection is closed after ``timeout_ms`` (0: never)."""

    name: ClassVar[str] = "timeout"
    toxic: ClassVar[str] = "timeout"
    timeout_ms: int = 0
    stream: Stream = "both"

    def attributes(self) -> dict[str, int | float]:
        return {"timeout": self.timeout_ms}


@dataclass
class LimitData(ToxicFault):
    """The connection is closed once ``bytes`` went through."""

    name: ClassVar[str] = "limit_data"
    toxic: ClassVar[str] = "limit_data"
    bytes: int = 48000
    stream: Stream = "upstream"

    def attributes(self) -> dict[str, int | float]:
        return {"bytes": self.bytes}


@dataclass
class SlowClose(ToxicFault):
    """The close (FIN) is held back ``delay_ms``."""

    name: ClassVar[str] = "slow_close"
    toxic: ClassVar[str] = "slow_close"
    delay_ms: int = 2000
    stream: Stream = "downstream"

    def attributes(self) -> dict[str, int | float]:
        return {"delay": self.delay_ms}


@dataclass
class ProxyDown(Fault):
    """The proxy disabled: open connections drop, new ones are refused until ``stop``."""

    name: ClassVar[str] = "down"
    layer: ClassVar[str] = "toxiproxy"

    async def _start(self, ctx: FaultContext) -> None:
        proxy: tp.FaultProxy = ctx.layer(self.layer, self.name)
        self._state()["proxy"] = proxy
        await proxy.client.set_enabled(proxy.proxy, False)
        self._open(ctx, target=f"toxiproxy:{proxy.name}")

    async def _stop(self) -> None:
        proxy: tp.FaultProxy = self._state()["proxy"]
        await proxy.client.set_enabled(proxy.proxy, True)


__all__ = ["Bandwidth", "Blackhole", "Latency", "LimitData", "ProxyDown", "ResetPeer", "SlowClose", "Slicer",
           "ToxicFault"]

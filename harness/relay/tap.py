"""The vendor leg as the fault proxy sees it: a :class:`WsFaultProxy` that also keeps the record.

The relay suite puts the fault proxy between the system under test and the vendor stand-in; every
connection the service makes to the vendor passes through it, so the proxy can record what a
relay check needs (open and close times, close code, who closed, every audio frame's arrival time
and size, control messages, results) as a :class:`~harness.vendorleg.VendorLeg`, in the same
shape the reference server's ``GET /debug/connections`` serves. The proxy adds what the server
cannot see: handshakes it refused, the faults it fired on each connection (its schedule, see
:meth:`WsFaultProxy.use_schedule`), cuts.

It uses the fault proxy's public hooks only: :meth:`~WsFaultProxy.upstream_path`,
:meth:`~WsFaultProxy.link_opened`, :meth:`~WsFaultProxy.route` and :meth:`~WsFaultProxy.link_closed`; refused handshakes come from the
proxy's own per-connection record (``fault_record``).

Times are ``time.monotonic_ns()`` at the proxy, the moment a message arrives from the service
(before any fault rule acts on it). A connection ends when either side's socket is closed, as the
service sees it (it may reconnect at once), not when the proxy has finished relaying the close.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from collections.abc import Mapping, Sequence

from harness.faults import vendors
from harness.faults.schedule import Schedule
from harness.faults.wsproxy import UPSTREAM, Link, Message, Pipe, WsFaultProxy
from harness.vendorleg import AudioLog, VendorConnection, VendorLeg

PROTOCOL_BY_PATH = (("/v1/listen", "deepgram"), ("/v1/realtime", "openai-realtime"), ("/v3/ws", "assemblyai"),
                    ("/v2", "speechmatics"))
MAX_FRAMES = 200_000  # exact frame times kept per connection; totals and the largest gap cover all


def protocol_of(path: str) -> str:
    p = urlsplit(path).path
    return next((name for prefix, name in PROTOCOL_BY_PATH if p.startswith(prefix)), "unknown")


def with_query(path: str, extra: dict[str, str]) -> str:
    """``path`` with ``extra`` appended to its query (parameters it already has are kept)."""
    have = parse_qs(urlsplit(path).query)
    add = {k: v for k, v in extra.items() if k not in have}
    if not add:
        return path
    return path + ("&" if "?" in path else "?") + urlencode(add)


def tag_of(path: str) -> str | None:
    values = parse_qs(urlsplit(path).query).get("tag")
    return values[0] if values else None


class RecordingProxy(WsFaultProxy):
    """A fault proxy that records every connection through it (see the module docstring)."""

    def __init__(self, *args: Any, extra_query: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Query parameters added to every handshake on its way to the vendor: the stand-in's own
        # extensions (the scripted engine's ``script``) that a client library has no way to send.
        self.extra_query = dict(extra_query or {})
        self._accepted: dict[int, VendorConnection] = {}  # by the proxy's connection index
        self._watchers: dict[int, list[asyncio.Future[Any]]] = {}

    def vendor_leg(self) -> VendorLeg:
        """A snapshot (copies), safe to hand to a check while the proxy runs on: the accepted
        connections as recorded here, the refused ones from the proxy's own record."""
        conns = []
        for rec in self.fault_record.connections:
            conn = self._accepted.get(rec.index)
            if conn is not None:
                conn.faults = list(rec.faults)
            elif rec.handshake_status not in (None, 101):  # refused (by a fault, or the vendor, or unreachable)
                conn = rec.vendor_connection(f"p-{rec.index}")
                conn.protocol = protocol_of(rec.path)
            else:
                continue  # its handshake is still under way
            conns.append(conn)
        return VendorLeg.from_dict(VendorLeg(conns).to_dict())

    def use_session_faults(self, steps: Sequence[Mapping[str, Any]]) -> None:
        """Run ``steps`` (fault-schedule steps as data) on the vendor connections of the session
        about to start (:func:`session_schedule`); no steps: no faults from now on."""
        self.use_schedule(session_schedule(steps, self.fault_record.total) if steps else None)

    # --- the fault proxy's hooks ---------------------------------------------------------
    def upstream_path(self, path: str) -> str:
        return with_query(path, self.extra_query) if self.extra_query else path

    def link_opened(self, link: Link) -> None:
        path = link.client.request.path if link.client.request else ""
        conn = VendorConnection(conn_id=f"p-{link.record.index}", protocol=protocol_of(path),
                                path=urlsplit(path).path, tag=tag_of(path), opened_ns=time.monotonic_ns())
        self._accepted[link.record.index] = conn
        watchers = [asyncio.ensure_future(c.wait_closed()) for c in (link.client, link.upstream)]
        for w in watchers:
            w.add_done_callback(lambda _: _closed_now(conn))
        self._watchers[link.record.index] = watchers

    def route(self, msg: Message, pipe: Pipe) -> None:
        conn = self._accepted.get(pipe.link.record.index)
        if conn is not None:
            _note(conn, msg)
        super().route(msg, pipe)

    def link_closed(self, link: Link) -> None:
        conn = self._accepted.get(link.record.index)
        for w in self._watchers.pop(link.record.index, []):
            w.cancel()
        if conn is None:
            return
        _closed_now(conn)
        up = link.upstream
        conn.close_code, conn.close_reason = up.close_code, up.close_reason or ""
        if link.forced is not None:
            conn.closed_by = "proxy"
            conn.close_code, conn.close_reason = link.forced
        elif up.protocol.close_rcvd_then_sent is True:
            conn.closed_by = "server"
        elif up.protocol.close_rcvd_then_sent is False:
            conn.closed_by = "client"
        if conn.close_code is None and link.client.close_code is None:
            conn.close_code = 1006  # no close frame either way: a cut


def session_schedule(steps: Sequence[Mapping[str, Any]], before: int) -> Schedule:
    """Fault-schedule steps for one session: their targets count the session's own vendor
    connections (``{nth = 1}``: its first; ``{first = 3}``: its first three), while the proxy,
    shared by the whole run, numbers every connection since it started (``before`` of them)."""
    shifted = []
    for step in steps:
        target = step.get("target", "all")
        if isinstance(target, Mapping):
            if len(target) != 1 or next(iter(target)) not in ("nth", "first"):
                raise ValueError(f"a session's fault targets its connections by {{nth = N}} or {{first = N}}, "
                                 f"got {dict(target)!r}")
            (key, n), = target.items()
            if isinstance(n, bool) or not isinstance(n, int) or n < 1:
                raise ValueError(f"target {key} must be a whole number >= 1, got {n!r}")
            target = {key: before + n}
        shifted.append({**step, "target": target})
    return Schedule.from_data({"fault": shifted}, source="session faults")


def _closed_now(conn: VendorConnection) -> None:
    if conn.closed_ns is None:
        conn.closed_ns = time.monotonic_ns()


def _note(conn: VendorConnection, msg: Message) -> None:
    now = time.monotonic_ns()
    if msg.direction == UPSTREAM:
        if msg.kind == "binary":
            audio: AudioLog = conn.audio
            size = len(msg.data)
            if audio.last_ns is not None:
                audio.max_gap_ns = max(audio.max_gap_ns, now - audio.last_ns)
            if audio.first_ns is None:
                audio.first_ns = now
            audio.last_ns = now
            audio.total_frames += 1
            audio.total_bytes += size
            if len(audio.frames) < MAX_FRAMES:
                audio.frames.append((now, size))
        elif msg.kind != "text":
            conn.controls.append((now, msg.kind))
        return
    if vendors.is_result(msg.obj):
        conn.results.append((now, vendors.is_final(msg.obj), _text(msg.obj)))


def _text(obj: dict[str, Any]) -> str:
    try:
        return str(obj["channel"]["alternatives"][0]["transcript"])
    except (KeyError, IndexError, TypeError):
        return str(obj.get("transcript") or obj.get("text") or "")


def leg_to_json(leg: VendorLeg) -> str:
    return json.dumps(leg.to_dict(), indent=1)

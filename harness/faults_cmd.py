"""``harness faults``: a fault schedule in front of a loopback WebSocket backend, in the foreground.

``harness faults --upstream ws://127.0.0.1:8700 --faults faults.toml`` starts the WebSocket fault
proxy with the schedule and prints its URL; point your client (or your relay's vendor URL) at it.
``harness serve --faults faults.toml`` does the same in front of a reference server it starts
(see :mod:`harness.serve_cmd`), with one URL per vendor protocol.

The schedule is read and checked before anything listens (a bad file is exit code 2, naming the
line). The proxy's record (per connection: handshake status, faults fired, messages relayed and
dropped) is served as JSON at ``GET <proxy>/_faults/connections`` while it runs, and written to
``--record FILE`` when it stops (SIGINT or SIGTERM). Loopback only: the upstream must be on this
machine and the proxy listens on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from harness.cli import HarnessError
from harness.faults.schedule import Schedule, ScheduleError
from harness.faults.vendors import VENDOR_PATHS
from harness.faults.wsproxy import RECORD_PATH, WsFaultProxy
from harness.safety import RemoteTargetError, require_loopback

READY = "fault proxy ready"  # the last line of the banner: a script waiting for the proxy reads up to it


def configure_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--upstream", required=True, metavar="URL",
                   help="the loopback backend to put the faults in front of (ws://, http://)")
    add_proxy_options(p)


def add_proxy_options(p: argparse.ArgumentParser, *, required: bool = True) -> None:
    p.add_argument("--faults", required=required, metavar="FILE", help="the fault schedule (TOML)")
    p.add_argument("--proxy-port", type=int, default=0, metavar="PORT",
                   help="port of the fault proxy on 127.0.0.1 (default: a free one)")
    p.add_argument("--tag-header", metavar="NAME",
                   help="a request header whose value tags a connection (besides Deepgram's tag= parameter)")
    p.add_argument("--record", metavar="FILE", help="write the proxy's record (JSON) here when it stops")


def load_schedule(path: str) -> Schedule:
    try:
        return Schedule.load(path)
    except ScheduleError as exc:
        raise HarnessError(str(exc)) from None


def make_proxy(upstream: str, schedule: Schedule, args: argparse.Namespace) -> WsFaultProxy:
    try:
        require_loopback(upstream, False)
    except RemoteTargetError as exc:
        raise HarnessError(f"the fault proxy is loopback only: {str(exc).split(';')[0]}") from None
    try:
        return WsFaultProxy(upstream, schedule=schedule, port=args.proxy_port, tag_header=args.tag_header)
    except ValueError as exc:
        raise HarnessError(str(exc)) from None


def describe(proxy: WsFaultProxy, schedule: Schedule, source: str) -> list[str]:
    lines = [f"fault proxy on {proxy.ws_url} -> {proxy.upstream}, schedule {source} ({len(schedule)} fault(s)):"]
    for step in schedule.describe():
        lines.append("  " + json.dumps(step, separators=(", ", ": ")))
    lines.append(f"record: http://127.0.0.1:{proxy.port}{RECORD_PATH}")
    return lines


def protocol_urls(proxy: WsFaultProxy) -> list[str]:
    width = max(len(n) for n in VENDOR_PATHS)
    return [f"  {name:<{width}}  {proxy.ws_url}{path}" for name, path in VENDOR_PATHS.items()]


async def serve_until_stopped(proxy: WsFaultProxy, banner: Callable[[], list[str]], record: str | None,
                              on_stop: Callable[[], Awaitable[None]] | None = None) -> int:
    """Run the proxy until SIGINT/SIGTERM; print the banner once it listens; write the record."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await proxy.start()
        print("\n".join(banner()), flush=True)
        await stop.wait()
    finally:
        await proxy.close()
        if on_stop is not None:
            await on_stop()
        if record:
            Path(record).write_text(json.dumps(proxy.fault_record.to_dict(), indent=1), encoding="utf-8")
            print(f"record written to {record}", flush=True)
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(sig)
    if proxy.errors:
        print("fault proxy errors: " + "; ".join(proxy.errors[:5]), file=sys.stderr)
        return 2
    return 0


def main(args: argparse.Namespace) -> int:
    schedule = load_schedule(args.faults)
    proxy = make_proxy(args.upstream, schedule, args)
    return asyncio.run(serve_until_stopped(
        proxy, lambda: [*describe(proxy, schedule, args.faults), READY], args.record))


__all__ = ["add_proxy_options", "configure_parser", "main"]

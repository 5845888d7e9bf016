"""``harness serve``: the reference server in the foreground.

It replaces itself with ``python -m reference_server`` (exec), so SIGTERM and Ctrl-C reach the
server directly and it closes open streams with 1001 before it exits.

With ``--faults FILE`` it puts a fault schedule in front of the server's stream endpoints
instead: the server runs as a child process on a free port, the fault proxy listens on
``--port``, and one URL per vendor protocol is printed (HTTP calls go to the server directly).
SIGTERM or Ctrl-C stop both. See :mod:`harness.faults_cmd`.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from pathlib import Path


def configure_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8700, help="port (default 8700; 0 picks a free one)")
    p.add_argument("--engine", default="pocketsphinx", choices=["pocketsphinx", "scripted"],
                   help="default engine for sessions that do not name one")
    p.add_argument("--db", default=".harness/reference.sqlite3", help="SQLite file (kept across restarts)")
    p.add_argument("--defect", action="append", default=[], metavar="NAME",
                   help="switch on a planted defect from DEFECTS.md (repeatable)")
    p.add_argument("--test-hooks", action="store_true", help="enable hold_step and /debug/release")
    p.add_argument("--stall-after", type=float, metavar="S", help="seconds without progress before stalled")
    p.add_argument("--api-key", help="API key (default: $REFERENCE_API_KEY or a new random key)")
    p.add_argument("--faults", metavar="FILE",
                   help="a fault schedule (TOML) in front of every stream endpoint; see 'harness faults'")
    p.add_argument("--tag-header", metavar="NAME",
                   help="with --faults: a request header whose value tags a connection")
    p.add_argument("--wyoming-port", type=int, metavar="P",
                   help="also serve Wyoming over TCP on this port (0: a free one; printed at startup). "
                        "Wyoming has no credentials: keep --host on loopback")
    p.add_argument("--record", metavar="FILE", help="with --faults: write the proxy's record (JSON) here at exit")


def build_command(args: argparse.Namespace) -> list[str]:
    key = args.api_key or os.environ.get("REFERENCE_API_KEY") or secrets.token_urlsafe(18)
    cmd = [sys.executable, "-m", "reference_server", "--host", args.host, "--port", str(args.port),
           "--engine", args.engine, "--db", args.db, f"--api-key={key}"]
    for defect in args.defect:
        cmd += ["--defect", defect]
    if args.test_hooks:
        cmd.append("--test-hooks")
    if args.stall_after is not None:
        cmd += ["--stall-after", str(args.stall_after)]
    if getattr(args, "wyoming_port", None) is not None:
        cmd += ["--wyoming-port", str(args.wyoming_port)]
    return cmd


def main(args: argparse.Namespace) -> int:
    Path(args.db).parent.mkdir(parents=True, exist_ok=True)
    if args.faults:
        return serve_with_faults(args)
    cmd = build_command(args)
    sys.stdout.flush()
    os.execv(cmd[0], cmd)
    return 0  # not reached


def serve_with_faults(args: argparse.Namespace) -> int:
    """The server as a child on a free port, the fault proxy on ``--port`` in front of it."""
    import asyncio

    from harness.cli import HarnessError
    from harness.faults_cmd import describe, load_schedule, make_proxy, protocol_urls, serve_until_stopped
    from harness.services import ReferenceServer, ServiceError

    schedule = load_schedule(args.faults)  # a bad file stops here, before anything starts
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        raise HarnessError("--faults is loopback only: the proxy and the server listen on 127.0.0.1")
    key = args.api_key or os.environ.get("REFERENCE_API_KEY") or secrets.token_urlsafe(18)
    extra = ["--stall-after", str(args.stall_after)] if args.stall_after is not None else []
    server = ReferenceServer(engine=args.engine, defects=args.defect, test_hooks=args.test_hooks, db_path=args.db,
                             api_key=key, extra_args=extra)
    args.proxy_port = args.port
    proxy = make_proxy(server.ws_url, schedule, args)
    try:
        server.start()
    except ServiceError as exc:
        raise HarnessError(str(exc)) from None

    async def stop_server() -> None:
        await asyncio.to_thread(server.stop)

    def banner() -> list[str]:
        return [f"reference server (HTTP, direct): {server.url}  API key: {key}",
                *describe(proxy, schedule, args.faults)[:-1], "stream URLs through the faults:",
                *protocol_urls(proxy), describe(proxy, schedule, args.faults)[-1], "fault proxy ready"]

    try:
        return asyncio.run(serve_until_stopped(proxy, banner, args.record, stop_server))
    finally:
        server.stop()

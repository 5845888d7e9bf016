"""``harness serve``: the reference server in the foreground.

It replaces itself with ``python -m reference_server`` (exec), so SIGTERM and Ctrl-C reach the
server directly and it closes open streams with 1001 before it exits.
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
    return cmd


def main(args: argparse.Namespace) -> int:
    Path(args.db).parent.mkdir(parents=True, exist_ok=True)
    cmd = build_command(args)
    sys.stdout.flush()
    os.execv(cmd[0], cmd)
    return 0  # not reached

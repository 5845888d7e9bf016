"""``python -m reference_server``: parse the process contract's flags and serve.

Exit codes: 0 after a clean stop (SIGTERM), 2 for bad arguments (an unknown defect is named, with
the known ones listed), 1 if the server could not start (e.g. the port is taken).
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from collections.abc import Sequence

from .config import ServerConfig
from .defects import KNOWN_DEFECTS, DefectSet, UnknownDefect


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m reference_server",
                                description="Reference streaming transcription server (PROTOCOL.md v1).")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8700, help="port (default 8700; 0 picks a free one)")
    p.add_argument("--engine", default="pocketsphinx", choices=["pocketsphinx", "scripted"],
                   help="engine for sessions that do not name one")
    p.add_argument("--db", default=".harness/reference.sqlite3", metavar="PATH", help="SQLite file")
    p.add_argument("--defect", action="append", default=[], metavar="NAME",
                   help=f"switch on a planted defect (repeatable): {', '.join(KNOWN_DEFECTS)}")
    p.add_argument("--test-hooks", action="store_true", help="enable metadata.hold_step and /debug/release")
    p.add_argument("--stall-after", type=float, default=60.0, metavar="S",
                   help="seconds without progress before a transaction is stalled (default 60)")
    p.add_argument("--heartbeat-s", type=float, default=5.0, help="ping interval (default 5)")
    p.add_argument("--idle-timeout-s", type=float, default=15.0, help="close 4408 after this long idle")
    p.add_argument("--max-segment-s", type=float, default=15.0, help="force a final at least this often")
    p.add_argument("--max-sessions", type=int, default=1000, help="active sessions before 503 / 1013")
    p.add_argument("--max-frame-bytes", type=int, default=32768, help="largest audio payload per frame")
    p.add_argument("--deepgram-timeout-s", type=float, default=10.0,
                   help="/v1/listen closes 1011 NET-0001 after this long without audio or a message")
    p.add_argument("--engine-workers", type=int, default=os.cpu_count() or 1, metavar="N",
                   help="processes that decode pocketsphinx streams (default: one per CPU; 0 = in this process)")
    p.add_argument("--wyoming-port", type=int, default=_env_port("REFERENCE_WYOMING_PORT"), metavar="P",
                   help="also serve Wyoming over TCP on this port (0 picks a free one; default: "
                        "$REFERENCE_WYOMING_PORT, else not served). Wyoming has no credentials: bind to loopback")
    p.add_argument("--api-key", help="API key (default: $REFERENCE_API_KEY, else a random one)")
    p.add_argument("--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug"])
    return p


def _env_port(name: str) -> int | None:
    value = os.environ.get(name)
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        sys.exit(f"python -m reference_server: ${name} must be a port number, got {value!r}")


def join_values(argv: Sequence[str]) -> list[str]:
    """``--api-key -x`` -> ``--api-key=-x``: a random key may start with '-', which argparse would
    otherwise take for an option."""
    out: list[str] = []
    it = iter(argv)
    for arg in it:
        if arg == "--api-key":
            value = next(it, None)
            out.append(arg if value is None else f"{arg}={value}")
        else:
            out.append(arg)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(join_values(sys.argv[1:] if argv is None else argv))
    try:
        defects = DefectSet.parse(args.defect)
    except UnknownDefect as exc:
        parser.error(str(exc))  # exit 2
    api_key = args.api_key or os.environ.get("REFERENCE_API_KEY") or secrets.token_urlsafe(18)
    try:
        config = ServerConfig(
            api_key=api_key, host=args.host, port=args.port, engine=args.engine, db_path=args.db,
            defects=defects, test_hooks=args.test_hooks, stall_after_s=args.stall_after,
            heartbeat_s=args.heartbeat_s, idle_timeout_s=args.idle_timeout_s, max_segment_s=args.max_segment_s,
            max_sessions=args.max_sessions, max_frame_bytes=args.max_frame_bytes, log_level=args.log_level,
            deepgram_timeout_s=args.deepgram_timeout_s, engine_workers=args.engine_workers,
            wyoming_port=args.wyoming_port,
        )
    except ValueError as exc:
        parser.error(str(exc))
    from .engines import workers

    workers.configure(config.engine_workers)  # started on first use, or now for a pocketsphinx default
    if config.engine == "pocketsphinx":
        _prewarm_in_background(config.engine)
    from .server import run  # imports uvicorn/fastapi only once the arguments are good

    try:
        return run(config)
    finally:
        workers.shutdown()


def _prewarm_in_background(engine: str) -> None:
    """Build a couple of decoders while the server starts, so the first streams do not wait."""
    import threading

    from .engines import prewarm

    threading.Thread(target=prewarm, args=(engine, 2), name="engine-prewarm", daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())

"""The machine's own scheduling noise: how late a plain sleep loop wakes up.

    python -m harness.load.noise --seconds 60 [--period-ms 100]

sleeps to a 100 ms grid (the load's chunk period) and records how late each wake-up was; on exit
(the time is up, or SIGTERM) it prints one JSON line with the lateness percentiles. Nothing else
runs in its process, so the figure is the floor under any pacing figure on this machine at this
time: a load generator whose pacing error is far above it was itself the bottleneck.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from typing import Any


class _Stop(Exception):
    pass


def lateness_figures(errors_ms: list[float]) -> dict[str, Any]:
    """count, p50, p95, p99 and max of wake-up lateness in ms (nearest-rank percentiles)."""
    if not errors_ms:
        return {"count": 0}
    e = sorted(errors_ms)
    pick = lambda q: e[min(len(e) - 1, max(0, int(round(q / 100 * len(e))) - 1))]  # noqa: E731
    return {"count": len(e), "p50": round(pick(50), 3), "p95": round(pick(95), 3), "p99": round(pick(99), 3),
            "max": round(e[-1], 3)}


def sleep_lateness(seconds: float, period_s: float = 0.1) -> list[float]:
    """Wake-up lateness (ms) of a sleep loop on a ``period_s`` grid for at most ``seconds``."""
    errors: list[float] = []
    t0 = time.monotonic()
    try:
        for i in range(1, int(seconds / period_s + 1e-9) + 1):
            due = t0 + i * period_s
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            errors.append((time.monotonic() - due) * 1000)
    except _Stop:
        pass
    return errors


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, required=True, help="measure at most this long")
    ap.add_argument("--period-ms", type=float, default=100.0)
    args = ap.parse_args(argv)
    if not args.seconds > 0 or not args.period_ms > 0:
        ap.error("--seconds and --period-ms must be > 0")

    def stop(signum: int, frame: Any) -> None:
        raise _Stop

    signal.signal(signal.SIGTERM, stop)
    errors = sleep_lateness(args.seconds, args.period_ms / 1000)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # printing the result must not be cut short
    print(json.dumps({**lateness_figures(errors), "period_ms": args.period_ms}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What a client does when its stream closes: PROTOCOL.md's close-code table as a pure function.

| code | meaning | client |
| --- | --- | --- |
| 1000 | session complete | stop |
| 1001, 1011, 1006 (abnormal), 1005, 1012, 1014 | going away / internal / dropped | reconnect with backoff, resume |
| 1013 | at capacity | retry after a delay |
| 4408 | idle timeout | reconnect if work remains (audio to send or a finalize to deliver) |
| 1008, 1009, 4404, 4409, 4410 | not authorized, too large, unknown, superseded, finalized | stop |

Any other code stops too and says so: retrying an unexplained close would hide it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

STOP_CODES: dict[int, str] = {
    1000: "session complete",
    1008: "not authorized",
    1009: "frame too large",
    4404: "unknown session",
    4409: "superseded by a newer connection",
    4410: "session already finalized",
}
RESUME_CODES: dict[int, str] = {
    1001: "server going away",
    1005: "closed without a status code",
    1006: "connection dropped (abnormal closure)",
    1011: "server internal error",
    1012: "server restarting",
    1014: "bad gateway",
}
CAPACITY_CODE = 1013
IDLE_CODE = 4408


@dataclass(frozen=True)
class Decision:
    action: Literal["stop", "reconnect"]
    delay_s: float
    reason: str


def backoff_delay(attempt: int, base_s: float, cap_s: float, jitter: float, rng: random.Random) -> float:
    """Exponential backoff with jitter: ``min(cap, base * 2**attempt)`` reduced by up to
    ``jitter`` (0..1) of itself, so clients dropped together do not come back together."""
    delay = min(cap_s, base_s * (2 ** min(attempt, 30)))
    return delay * (1.0 - jitter * rng.random())


def close_decision(
    code: int,
    *,
    work_remains: bool,
    reconnects: int,
    max_reconnects: int,
    failures: int,
    base_s: float,
    cap_s: float,
    jitter: float,
    capacity_retry_s: float,
    rng: random.Random,
) -> Decision:
    """Decide after a close with ``code``.

    ``reconnects`` is how many reconnects this session already made (bounded by
    ``max_reconnects``); ``failures`` counts closes since the stream last made progress and sets
    the backoff exponent.
    """
    if code in STOP_CODES:
        return Decision("stop", 0.0, f"close {code}: {STOP_CODES[code]}")
    if code == IDLE_CODE and not work_remains:
        return Decision("stop", 0.0, f"close {code}: idle timeout with nothing left to send")
    if code not in RESUME_CODES and code not in (CAPACITY_CODE, IDLE_CODE):
        return Decision("stop", 0.0, f"close {code}: not a code the protocol retries")
    if reconnects >= max_reconnects:
        return Decision("stop", 0.0, f"close {code}: gave up after {reconnects} reconnect(s) (max_reconnects={max_reconnects})")
    if code == CAPACITY_CODE:
        delay = capacity_retry_s * (1.0 - jitter * rng.random() / 2)
        return Decision("reconnect", delay, f"close {code}: server at capacity, retrying in {delay:.2f} s")
    what = RESUME_CODES.get(code, "idle timeout with audio left")
    delay = backoff_delay(failures, base_s, cap_s, jitter, rng)
    return Decision("reconnect", delay, f"close {code}: {what}, reconnecting in {delay:.2f} s")

"""Small helpers shared by the checks: how to name a session, convert offsets, build verdicts."""

from __future__ import annotations

from typing import Any

from harness.checks.verdict import Status, Verdict
from harness.history import History

BYTES_PER_SAMPLE = 2  # s16le mono


def session_label(history: History) -> str:
    """``session <id>`` plus the scenario when known, for failure messages."""
    sid = history.session_id or history.meta.get("session_id") or "<no session id>"
    scenario = history.meta.get("scenario")
    return f"session {sid}" + (f" ({scenario})" if scenario else "")


def bytes_per_ms(history: History) -> float:
    """Audio bytes per millisecond of the stream (32 at 16 kHz s16le mono)."""
    rate = int(history.meta.get("sample_rate") or 16000)
    return rate * BYTES_PER_SAMPLE / 1000.0


def ms_to_offset(history: History, ms: float) -> int:
    """The byte offset of a stream time; rounded down to a whole sample."""
    offset = int(ms * bytes_per_ms(history))
    return offset - offset % BYTES_PER_SAMPLE


def speech_onset_ms(history: History) -> float | None:
    """The fixture's speech onset: ``meta.speech_onset_ms`` or ``meta.speech_onset_s``."""
    meta = history.meta
    if meta.get("speech_onset_ms") is not None:
        return float(meta["speech_onset_ms"])
    if meta.get("speech_onset_s") is not None:
        return float(meta["speech_onset_s"]) * 1000.0
    return None


def sent_through(history: History) -> int:
    """One past the highest audio byte offset ever sent."""
    ends = [r.data["offset"] + r.data["length"] for r in history.of_kind("audio_sent")]
    return max(ends, default=0)


def ns_to_ms(ns: int) -> float:
    return round(ns / 1e6, 3)


def in_fault(history: History, start_ns: int, end_ns: int) -> bool:
    """Whether ``[start_ns, end_ns]`` overlaps any of the history's fault windows."""
    for w in history.faults:
        w_end = w.end_ns if w.end_ns is not None else float("inf")
        if w.start_ns <= end_ns and start_ns <= w_end:
            return True
    return False


def verdict(
    name: str,
    status: Status,
    message: str,
    metrics: dict[str, Any] | None = None,
    evidence: dict[str, Any] | None = None,
) -> Verdict:
    return Verdict(name=name, status=status, message=message, metrics=metrics or {}, evidence=evidence or {})


def short(items: list[Any], limit: int = 5) -> str:
    """The first ``limit`` items joined, with a count of the rest: keeps messages one line."""
    shown = ", ".join(str(i) for i in items[:limit])
    return shown + (f" … and {len(items) - limit} more" if len(items) > limit else "")

"""Liveness: a silent stream is closed at the idle timeout, and a keepalive holds it open.

PROTOCOL.md: "No audio and no keepalive for ``idle_timeout_s``: close 4408", and a keepalive
"resets the idle timer"; Deepgram: no audio or message for 10 s, close 1011 ``NET-0001``, and
``KeepAlive`` keeps the stream open. Both halves matter to a client: a server that never lets a
silent stream go leaks connections (and sessions) for every closed laptop lid, and a server that
ignores keepalives drops every user who pauses to think.

Input: the history of one stream (what it sent, what it received, when). Silence starts at the
stream's last frame sent (audio or control); the close is the stream's ``closed`` event.
"""

from __future__ import annotations

from harness.checks._common import ns_to_ms, session_label, verdict
from harness.checks.verdict import Status, Verdict
from harness.history import History

SENT_KINDS = ("audio_sent", "control_sent")


def _last_sent_ns(history: History, kinds: tuple[str, ...] = SENT_KINDS, before_ns: int | None = None) -> int | None:
    times = [r.t_ns for r in history.records if r.kind in kinds and (before_ns is None or r.t_ns < before_ns)]
    return max(times) if times else None


def _close(history: History) -> tuple[int, int, str] | None:
    """(t_ns, code, reason) of the stream's close, if it closed."""
    closes = history.events("closed")
    if not closes:
        return None
    t_ns, event = closes[0]
    return t_ns, event.code, event.reason  # type: ignore[union-attr]


def idle_close(history: History, *, limit_s: float, margin_s: float,
               expected: tuple[int, str] | None = None) -> Verdict:
    """The silent stream was closed by the server within ``limit_s + margin_s`` of its last frame,
    with the protocol's idle close (``expected``: code and reason prefix; None: any code)."""
    name, who = "liveness.idle_close", session_label(history)
    last = _last_sent_ns(history)
    if last is None:
        return verdict(name, Status.UNKNOWN, f"{who}: the stream sent nothing, so no silence can be timed")
    close = _close(history)
    if close is None:
        return verdict(name, Status.FAIL, f"{who}: a silent stream was never closed by the server (idle timeout "
                       f"{limit_s:g} s, waited {limit_s + margin_s:g} s): silent clients leak connections",
                       evidence={"limit_s": limit_s, "margin_s": margin_s})
    t_ns, code, reason = close
    silent_ms = ns_to_ms(t_ns - last)
    metrics = {"idle_close_after_ms": round(silent_ms)}
    evidence = {"close_code": code, "close_reason": reason, "limit_s": limit_s}
    if silent_ms > (limit_s + margin_s) * 1000:
        return verdict(name, Status.FAIL, f"{who}: closed only {silent_ms / 1000:.1f} s into silence, past the idle "
                       f"timeout of {limit_s:g} s (+{margin_s:g} s margin)", metrics, evidence)
    if expected is not None:
        want_code, want_reason = expected
        if code != want_code or not (reason or "").startswith(want_reason):
            want = f"{want_code}" + (f" {want_reason!r}" if want_reason else "")
            return verdict(name, Status.FAIL, f"{who}: the idle close was {code} {reason!r}, not the protocol's {want}: "
                           "a client cannot tell an idle timeout from another failure", metrics, evidence)
    return verdict(name, Status.PASS, f"{who}: closed {code} {reason!r} {silent_ms / 1000:.1f} s into silence "
                   f"(idle timeout {limit_s:g} s)", metrics, evidence)


def _longest_silence(history: History) -> tuple[int, int] | None:
    """(start, end) ns of the longest stretch without audio sent, up to the stream's close or its
    last record: the silence the keepalives had to bridge."""
    audio = sorted(r.t_ns for r in history.records if r.kind == "audio_sent")
    if not audio:
        return None
    close = _close(history)
    end = close[0] if close else max(r.t_ns for r in history.records)
    spans = [(a, b) for a, b in zip(audio, audio[1:])] + [(audio[-1], max(end, audio[-1]))]
    return max(spans, key=lambda span: span[1] - span[0])


def keepalive_holds(history: History, *, held_s: float) -> Verdict:
    """The stream sent no audio but keepalives for at least ``held_s`` and was not closed in that time.

    ``held_s`` is chosen by the scenario past the moment the server closed a silent twin stream, so a
    pass shows the keepalives, not a lenient timer, kept this one open."""
    name, who = "liveness.keepalive_holds", session_label(history)
    silence = _longest_silence(history)
    keepalives = [r.t_ns for r in history.records if r.kind == "control_sent" and r.data.get("message") == "keepalive"]
    if silence is None or not keepalives:
        return verdict(name, Status.UNKNOWN, f"{who}: the stream sent no audio or no keepalive, so nothing was held")
    start, end = silence
    quiet = [t for t in keepalives if start < t <= end]
    held_ms = ns_to_ms(end - start)
    gaps = [ns_to_ms(b - a) for a, b in zip([start] + quiet, quiet)]
    metrics = {"keepalive_held_ms": round(held_ms), "keepalive_interval_max_ms": round(max(gaps, default=0))}
    close = _close(history)
    closed_in_silence = close is not None and close[0] == end
    if closed_in_silence and held_ms < held_s * 1000:
        return verdict(name, Status.FAIL, f"{who}: closed {close[1]} {close[2]!r} {held_ms / 1000:.1f} s into a silence "
                       f"kept alive every {max(gaps, default=0) / 1000:.1f} s at most: keepalives did not reset the idle "
                       "timer", metrics, {"close_code": close[1], "close_reason": close[2]})
    if held_ms < held_s * 1000:
        return verdict(name, Status.UNKNOWN, f"{who}: held only {held_ms / 1000:.1f} s of the {held_s:g} s needed", metrics)
    return verdict(name, Status.PASS, f"{who}: {len(quiet)} keepalive(s) held a silent stream open for "
                   f"{held_ms / 1000:.1f} s", metrics)

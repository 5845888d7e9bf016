"""Checks for a fault survived by reconnecting as a new session (protocols without resume).

A Deepgram-, AssemblyAI-, Speechmatics- or OpenAI-speaking backend cannot resume a session: after
a network or L7 fault its client opens a new one and sends the rest of the audio. Some words
around the fault are lost by construction (the audio in flight, the finals the dead connection
owed); the rest must come out as a clean run of the same audio on the same target gives them.

- :func:`fault_audio_windows`: where, on the session's audio clock, losing words is excused: from
  the end of the last final received before the fault to where the stream carried on after it
  (the first audio of the next connection, or the fault's end), widened to the clean run's segment
  that holds that point (a recognizer starting mid-utterance hears a different utterance).
- :func:`words_around_fault`: outside those windows the words equal the baseline's; inside, the
  words lost and added are counted (``fault_lost_words``, ``fault_extra_words``) and reported.
- :func:`interrupted_sessions_closed`: every session the client left behind was closed by the
  server (its state, read back after the run, is no longer ``created``/``streaming``).
- :func:`next_session_served`: a clean session opened after the faulted one completed with words.

All are pure functions of histories and of what the runner read back (states, a probe's outcome).
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from harness.checks import text as _text
from harness.checks._common import bytes_per_ms, session_label, short, verdict
from harness.checks.verdict import Status, Verdict
from harness.history import History

EDGE_TOLERANCE_MS = 120.0  # two recognizer runs place one segment edge this far apart at most
OPEN_STATES = frozenset({"created", "streaming", "interrupted"})  # a session nobody closed


@dataclass(frozen=True)
class Segment:
    """A final's words on the session's audio clock (ms)."""

    start_ms: float
    end_ms: float
    words: tuple[str, ...]

    @classmethod
    def of(cls, start_ms: float, end_ms: float, text: str) -> Segment:
        return cls(float(start_ms), float(end_ms), tuple(_text.words(text)))


def segments(history: History) -> list[Segment]:
    """The history's finals (one per segment id, the first copy) in audio order."""
    finals = sorted(history.unique_finals(), key=lambda f: (f.start_ms, f.end_ms))
    return [Segment.of(f.start_ms, f.end_ms, f.text) for f in finals]


def _audio_ms(history: History, t_ns: float) -> float:
    """How far the stream's audio had been sent at ``t_ns`` (ms of audio)."""
    end = 0
    for r in history.records:
        if r.t_ns > t_ns:
            break
        if r.kind == "audio_sent":
            end = max(end, r.data["offset"] + r.data["length"])
    return end / bytes_per_ms(history)


def _restarts_ms(history: History, after_ns: int) -> tuple[list[float], bool]:
    """Where each connection opened after ``after_ns`` started sending audio (ms), and whether a
    connection was lost after ``after_ns`` with no later one to carry on."""
    starts: list[float] = []
    waiting = False
    lost_without_successor = False
    for r in history.records:
        if r.t_ns < after_ns:
            continue
        if r.kind == "connected":
            waiting, lost_without_successor = True, False
        elif r.kind == "audio_sent" and waiting:
            starts.append(r.data["offset"] / bytes_per_ms(history))
            waiting = False
        elif r.kind == "event" and r.data["event"].get("type") == "closed" and r.data["event"].get("code") != 1000:
            lost_without_successor = True
    return starts, lost_without_successor


def fault_audio_windows(history: History, baseline: Sequence[Segment]) -> list[tuple[float, float]]:
    """The audio ranges (ms, merged, in order) where the history's faults excuse lost words."""
    finals = [(t, f) for t, f in history.finals()]
    audio_end = max([r.data["offset"] + r.data["length"] for r in history.of_kind("audio_sent")]
                    + [int(history.meta.get("audio_bytes") or 0)])  # the session's audio, sent or not
    audio_end_ms = audio_end / bytes_per_ms(history)
    last_record = history.records[-1].t_ns if history.records else 0
    windows: list[tuple[float, float]] = []
    for w in history.faults:
        start = max((f.end_ms for t, f in finals if t < w.start_ns), default=0.0)
        end_ns = w.end_ns if w.end_ns is not None else last_record
        end = _audio_ms(history, end_ns)
        restarts, lost = _restarts_ms(history, w.start_ns)
        if lost:
            end = audio_end_ms  # the stream never carried on: everything after the fault was owed
        end = max([end] + restarts)
        for seg in baseline:  # a recognizer starting mid-segment does not hear that segment whole
            if seg.start_ms < end < seg.end_ms:
                end = seg.end_ms
            if seg.start_ms < start < seg.end_ms:
                start = seg.start_ms
        windows.append((float(start), float(max(start, end))))
    merged: list[tuple[float, float]] = []
    for a, b in sorted(windows):
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


def _inside(seg: Segment, windows: Sequence[tuple[float, float]]) -> bool:
    return any(seg.start_ms < b - EDGE_TOLERANCE_MS and seg.end_ms > a + EDGE_TOLERANCE_MS for a, b in windows)


def _split(segs: Sequence[Segment], windows: Sequence[tuple[float, float]]) -> tuple[list[str], list[str]]:
    """(words outside every window, words inside one), each in audio order."""
    outside: list[str] = []
    inside: list[str] = []
    for seg in segs:
        (inside if _inside(seg, windows) else outside).extend(seg.words)
    return outside, inside


def _diff(ref: list[str], hyp: list[str]) -> tuple[int, int, list[str]]:
    """(words of ``ref`` lost, words added, what differs) by a word alignment."""
    lost = extra = 0
    changes: list[str] = []
    for op, a, b, c, d in difflib.SequenceMatcher(a=ref, b=hyp, autojunk=False).get_opcodes():
        if op == "equal":
            continue
        lost += b - a
        extra += d - c
        was, now = " ".join(ref[a:b]), " ".join(hyp[c:d])
        changes.append(f"{was!r} -> {now!r}" if was and now else (f"lost {was!r}" if was else f"added {now!r}"))
    return lost, extra, changes


def words_around_fault(history: History, baseline: Sequence[Segment] | None) -> Verdict:
    """Words outside the fault windows equal the clean baseline's; those inside are counted."""
    name, who = "chaos.words_around_fault", session_label(history)
    if baseline is None:
        return verdict(name, Status.UNKNOWN, f"{who}: no clean baseline run to compare with")
    got = segments(history)
    windows = fault_audio_windows(history, baseline)
    ref_out, ref_in = _split(baseline, windows)
    hyp_out, hyp_in = _split(got, windows)
    lost_in, extra_in, changes_in = _diff(ref_in, hyp_in)
    lost_out, extra_out, changes_out = _diff(ref_out, hyp_out)
    metrics: dict[str, Any] = {"fault_lost_words": [lost_in], "fault_extra_words": [extra_in]}
    evidence = {"windows_ms": [[round(a), round(b)] for a, b in windows], "baseline_outside": " ".join(ref_out),
                "got_outside": " ".join(hyp_out), "baseline_inside": " ".join(ref_in), "got_inside": " ".join(hyp_in),
                "changes_inside": changes_in, "changes_outside": changes_out}
    where = ", ".join(f"{a / 1000:.1f}-{b / 1000:.1f} s" for a, b in windows) or "none"
    if not ref_out and not ref_in:
        return verdict(name, Status.UNKNOWN, f"{who}: the clean baseline has no words to compare with", metrics, evidence)
    if lost_out or extra_out:
        return verdict(name, Status.FAIL,
                       f"{who}: outside the fault window(s) ({where} of audio) the words differ from the clean "
                       f"baseline run on the same target: {short(changes_out, 3)} ({lost_out} lost, {extra_out} added)",
                       metrics, evidence)
    inside = (f"inside it {lost_in} of {len(ref_in)} baseline word(s) lost, {extra_in} added"
              + (f" ({short(changes_in, 2)})" if changes_in else "")) if windows else "no fault window on the audio"
    return verdict(name, Status.PASS,
                   f"{who}: {len(ref_out)} word(s) outside the fault window(s) ({where}) as in the clean baseline; "
                   + inside, metrics, evidence)


def interrupted_sessions_closed(history: History, states: dict[str, str | None]) -> Verdict:
    """Every session of the run (one per connection for these protocols), read back after it
    ended, was closed by the server: none is left ``created``/``streaming`` (a hung connection)."""
    name, who = "chaos.interrupted_sessions_closed", session_label(history)
    if not states:
        return verdict(name, Status.UNKNOWN, f"{who}: no session id was reported, nothing to read back")
    unread = sorted(sid for sid, st in states.items() if st is None)
    still_open = sorted(f"{sid} {st!r}" for sid, st in states.items() if st in OPEN_STATES)
    evidence = {"states": dict(states)}
    if still_open:
        return verdict(name, Status.FAIL, f"{who}: session(s) still open after the client left them: "
                       + short(still_open, 3), {}, evidence)
    if unread:
        return verdict(name, Status.UNKNOWN, f"{who}: could not read back session(s) {short(unread, 3)}", {}, evidence)
    connections = len(history.of_kind("connected"))
    return verdict(name, Status.PASS, f"{who}: all {len(states)} session(s) whose id the stream reported "
                   f"({connections} connection(s)) closed by the server "
                   f"({', '.join(sorted({str(s) for s in states.values()}))})", {}, evidence)


def next_session_served(history: History, probe: dict[str, Any] | None) -> Verdict:
    """A clean session opened right after the faulted one completed with words: the backend is up."""
    name, who = "chaos.next_session_served", session_label(history)
    if probe is None:
        return verdict(name, Status.UNKNOWN, f"{who}: no session was opened after the fault")
    words = _text.words(probe.get("transcript"))
    if not probe.get("completed") or probe.get("error"):
        return verdict(name, Status.FAIL, f"{who}: the session opened after the fault did not complete: "
                       f"{probe.get('error') or 'closed ' + str(probe.get('close_code'))}", {}, probe)
    if not words:
        return verdict(name, Status.FAIL, f"{who}: the session opened after the fault completed with no words", {}, probe)
    return verdict(name, Status.PASS, f"{who}: the next session completed with {len(words)} word(s)", {}, probe)


__all__ = ["Segment", "fault_audio_windows", "interrupted_sessions_closed", "next_session_served", "segments",
           "words_around_fault"]

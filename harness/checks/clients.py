"""Checks of a voice-agent STT client under a vendor fault: pure functions of the client's history
(what the library delivered to the application) and the vendor leg (every connection it made).

:func:`client_row` measures one client x fault row: recovered or not, words lost against a clean
run of the same audio through the same client, words doubled, reconnect delay and attempts.
:func:`documented_behaviour` compares a row with what the library documents (a difference is a
finding, recorded beside the row). :func:`slo_gate` judges a row by an SLO file's thresholds:
only that decides whether the scenario fails, so a user can gate their own agent on it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from harness.checks import text as _text
from harness.checks._common import verdict
from harness.checks.integrity import transcript_words
from harness.checks.verdict import Status, Verdict
from harness.history import FaultWindow, History
from harness.vendorleg import VendorConnection

MS = 1_000_000
ROW = "clients.row"


@dataclass(frozen=True)
class Expectation:
    """What the library's documentation (or code) says it does under this fault."""

    recovers: bool
    delay_s: float | None = None  # the documented wait before the connection that recovers (None: not stated)
    attempts_at_most: int | None = None  # connection attempts it makes at most (None: not bounded)
    text: str = ""

    def describe(self) -> str:
        return self.text or ("recovers" if self.recovers else "does not recover")


def _vendor_final_words(conns: Sequence[VendorConnection]) -> list[tuple[int, str]]:
    return [(t, w) for c in conns if c.accepted for t, is_final, text in c.results if is_final and text
            for w in _text.words(text)]


def client_row(history: History, conns: Sequence[VendorConnection], fault: FaultWindow | None, *,
               baseline_words: int, silences: Sequence[tuple[int, int]] = (),
               windows: Sequence[FaultWindow] = ()) -> Verdict:
    """One client x fault row.

    The fault starts at ``fault.start_ns`` (for a silence: the silence's start). ``windows`` are
    every fault window of the run (results inside one were swallowed by the fault, not sent).

    - recovered: a vendor final sent after the fault started, outside every fault window, reached
      the client (the transcript resumed: on a new connection, or on one that survived);
    - words lost: the clean run's word count (``baseline_words``) minus the client's;
    - words doubled: words the client delivered more often than the vendor sent them;
    - reconnect delay: from the fault's start (or the dropped connection's close, if earlier)
      to the first accepted connection opened after the drop; attempts: connections tried after
      the fault started (refused ones too).
    """
    name = ROW
    start = fault.start_ns if fault is not None else (silences[0][0] if silences else None)
    audio = history.of_kind("audio_sent")
    if start is None:
        return verdict(name, Status.UNKNOWN, "no fault window and no silence in the run: the fault did not act")
    if not audio and not conns:
        return verdict(name, Status.UNKNOWN, "the client was given no audio and made no connection: the driver "
                       "did not run")
    got = [w.word for w in transcript_words(history)]
    finals = [t for t, _ in history.finals()]
    vendor_words = _vendor_final_words(conns)
    extra = Counter(got) - Counter(w for _, w in vendor_words)
    after = sorted(t for c in conns if c.accepted for t, is_final, text in c.results
                   if is_final and text and t > start and not any(w.contains(t) for w in windows))
    recovered = bool(after) and any(t >= after[0] for t in finals)
    accepted = [c for c in conns if c.accepted]
    dropped = next((c for c in accepted if c.closed_ns is not None and c.closed_ns >= start and c.close_code != 1000),
                   None)
    attempts = [c for c in conns if c.opened_ns >= start]
    refused_first = next((c for c in attempts if not c.accepted), None)
    delay_ms = None
    if dropped is not None:
        nxt = next((c for c in accepted if c.opened_ns >= dropped.closed_ns), None)
        if nxt is not None:
            delay_ms = round((nxt.opened_ns - min(start, dropped.closed_ns)) / MS, 1)
    elif refused_first is not None:
        nxt = next((c for c in accepted if c.opened_ns >= refused_first.opened_ns), None)
        if nxt is not None:
            delay_ms = round((nxt.opened_ns - refused_first.opened_ns) / MS, 1)
    errors = [e for _, e in history.events("error")]
    metrics: dict[str, Any] = {
        "client_recovered": int(recovered), "client_words": len(got), "client_baseline_words": baseline_words,
        "client_words_lost": max(0, baseline_words - len(got)), "client_words_doubled": sum(extra.values()),
        "client_reconnect_delay_ms": delay_ms, "client_attempts": len(attempts), "client_errors": len(errors),
    }
    how = ("recovered" if recovered else "did not recover") + (
        f", reconnected after {delay_ms:.0f} ms" if delay_ms is not None else ", no reconnect")
    message = (f"{how}; {len(attempts)} connection attempt(s) after the fault; {metrics['client_words_lost']} of "
               f"{baseline_words} words lost against the clean run, {metrics['client_words_doubled']} doubled; "
               f"{len(errors)} error(s) reported to the application")
    evidence = {"client": " ".join(got)[:2000], "errors": [getattr(e, "message", "")[:200] for e in errors][:10]}
    return verdict(name, Status.PASS, message, metrics, evidence)


def documented_behaviour(row: Verdict, expected: Expectation, delay_slack_s: float = 1.0) -> Verdict:
    """The row against the documented behaviour: recovered as documented; where a delay is
    documented, the reconnect delay within it (at least 80% of it, at most it plus
    ``delay_slack_s`` or half of it, whichever is more: a loaded machine adds time, never
    removes it); attempts within the documented bound. FAIL names each difference: a finding."""
    name = "clients.documented_behaviour"
    if row.status is not Status.PASS:
        return verdict(name, Status.UNKNOWN, f"the row was not measured: {row.message}")
    m = row.metrics
    findings = []
    if bool(m["client_recovered"]) != expected.recovers:
        findings.append(("recovered" if m["client_recovered"] else "did not recover")
                        + f", documented: {'recovers' if expected.recovers else 'does not recover'}")
    delay = m.get("client_reconnect_delay_ms")
    if expected.recovers and expected.delay_s is not None and delay is not None:
        low, high = expected.delay_s * 0.8 * 1000, (expected.delay_s + max(delay_slack_s, expected.delay_s / 2)) * 1000
        if not low <= delay <= high:
            findings.append(f"reconnected after {delay:.0f} ms, documented {expected.delay_s:g} s")
    if expected.attempts_at_most is not None and m["client_attempts"] > expected.attempts_at_most:
        findings.append(f"{m['client_attempts']} connection attempts, documented at most {expected.attempts_at_most}")
    metrics = {"client_findings": len(findings)}
    if findings:
        return verdict(name, Status.FAIL, "differs from the documented behaviour (" + expected.describe() + "): "
                       + "; ".join(findings), metrics, {"findings": findings})
    return verdict(name, Status.PASS, f"as documented: {expected.describe()}", metrics)


def slo_gate(row: Verdict, thresholds: Sequence[Any]) -> list[Verdict]:
    """One verdict per SLO threshold (``harness.slo.Threshold``) whose metric the row measured,
    judged on the row's own sample. Thresholds on metrics the row has not are left out."""
    from harness.slo import Samples, judge

    samples = Samples()
    for key, value in row.metrics.items():
        samples.add(key, value, ROW)
    out = []
    for t in thresholds:
        if t.metric not in samples.values and t.metric not in samples.rejected:
            continue
        r = judge(t, samples)
        out.append(verdict(f"slo.{t.metric}", r.status, r.message))
    return out


def baseline_row(history: History, conns: Sequence[VendorConnection], script: str, word_ms: int = 300) -> Verdict:
    """The clean run of a client (no fault): every word of the audio it was given, once, over
    one vendor connection. A difference is a finding of the library itself (e.g. the last open
    segment lost because it closes before the vendor's last final arrives); the faulted rows
    count their words lost against this run's, not against the script."""
    from harness.checks.integrity import expected_scripted_words

    name = ROW
    sent = sum(r.data["length"] for r in history.of_kind("audio_sent"))
    if not sent:
        return verdict(name, Status.UNKNOWN, "the client was given no audio: the driver did not run")
    expected = len(expected_scripted_words(script, sent, word_ms))
    got = [w.word for w in transcript_words(history)]
    extra = Counter(got) - Counter(w for _, w in _vendor_final_words(conns))
    findings = []
    if len(got) < expected:
        findings.append(f"{expected - len(got)} of the {expected} words of the audio never reached the application")
    if extra:
        findings.append(f"{sum(extra.values())} word(s) delivered more often than the vendor sent them")
    if len(conns) != 1:
        findings.append(f"{len(conns)} vendor connections for one clean stream")
    metrics = {"client_words": len(got), "client_expected_words": expected,
               "client_words_lost": max(0, expected - len(got)), "client_words_doubled": sum(extra.values()),
               "client_attempts": len(conns), "client_findings": len(findings)}
    message = (f"clean run: {len(got)} of {expected} words over {len(conns)} connection(s)"
               + (": " + "; ".join(findings) if findings else ", as expected"))
    return verdict(name, Status.PASS, message, metrics, {"client": " ".join(got)[:2000], "findings": findings})

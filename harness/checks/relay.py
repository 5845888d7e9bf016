"""Checks of a relay: pure functions of the client's history and the vendor leg's record.

The relay under test sits between the harness's client (its :class:`~harness.history.History`)
and the vendor stand-in (the :class:`~harness.vendorleg.VendorLeg`: every connection the relay
made to the vendor, with audio frame times and sizes, control messages, results, closes). A check
gets the vendor connections that belong to the client's session (:func:`session_connections`:
by Deepgram's ``tag``, or by time) and judges one property, naming the symptom, the session and
the evidence. None opens a socket, so each has unit tests with hand-made histories.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from harness.checks import text as _text
from harness.checks._common import session_label, short, verdict
from harness.checks.integrity import expected_scripted_words, transcript_words
from harness.checks.verdict import Status, Verdict
from harness.history import FaultWindow, History
from harness.vendorleg import VendorConnection, VendorLeg

MS = 1_000_000
CORRELATIONS = ("tag", "time")
BYTES_PER_S = 32_000


def _ms(history: History, t_ns: int | None) -> str:
    return "never" if t_ns is None else f"{(t_ns - history.t0_ns) / MS:.0f} ms"


def session_connections(leg: VendorLeg, history: History, correlate: str = "tag",
                        grace_ns: int = 2000 * MS) -> list[VendorConnection]:
    """The vendor connections (accepted or refused) of the client's session.

    ``tag``: those whose tag is the session id the client learned from the service (the service
    passes its session id to the vendor as Deepgram's ``tag``). ``time``: those opened while the
    client's session ran (from its first connect to its close plus ``grace_ns``); right only when
    sessions do not overlap."""
    if correlate not in CORRELATIONS:
        raise ValueError(f"unknown correlation {correlate!r}; expected one of {', '.join(CORRELATIONS)}")
    if correlate == "tag":
        return leg.with_tag(history.session_id) if history.session_id else []
    times = [r.t_ns for r in history.records]
    if not times:
        return []
    return leg.opened_between(min(times), max(times) + grace_ns)


def _client_audio(history: History) -> list[tuple[int, int]]:
    return [(r.t_ns, r.data["length"]) for r in history.of_kind("audio_sent")]


def _no_connection(name: str, history: History) -> Verdict:
    return verdict(name, Status.UNKNOWN, f"{session_label(history)}: no vendor connection correlates with the "
                   "session (is the session id passed as the vendor's tag? else correlate by time)")


# --- one vendor connection at a time ------------------------------------------------------------
def one_vendor_connection(history: History, conns: Sequence[VendorConnection]) -> Verdict:
    """At no instant are two accepted vendor connections of one session open together."""
    name, who = "relay.one_vendor_connection", session_label(history)
    accepted = [c for c in conns if c.accepted]
    if not accepted:
        return _no_connection(name, history)
    pairs = [(a, b) for i, a in enumerate(accepted) for b in accepted[i + 1:] if a.overlaps(b)]
    metrics = {"vendor_connections": len(accepted), "overlapping_pairs": len(pairs)}
    if pairs:
        shown = [f"{a.conn_id} opened at {_ms(history, a.opened_ns)} and {b.conn_id} opened at "
                 f"{_ms(history, b.opened_ns)} while it was open" for a, b in pairs]
        involved = {c.conn_id for pair in pairs for c in pair}
        return verdict(name, Status.FAIL, f"{who}: {len(involved)} vendor connections open at once for one "
                       "session: " + short(shown, 3), metrics,
                       {"pairs": [[a.conn_id, b.conn_id] for a, b in pairs]})
    return verdict(name, Status.PASS, f"{who}: {len(accepted)} vendor connection(s), never two at once", metrics)


# --- audio continuity -----------------------------------------------------------------------------
def audio_continuity(history: History, conns: Sequence[VendorConnection], max_gap_ms: float = 300.0,
                     min_rate: float = 0.95, faults: Sequence[FaultWindow] = ()) -> Verdict:
    """While the client streams, audio keeps reaching the vendor: the largest gap between audio
    frames at the vendor stays under ``max_gap_ms`` (gaps in which the client itself sent nothing
    for as long, and gaps that touch a fault window, do not count), and by the client's last
    send plus ``max_gap_ms`` the vendor has ``min_rate`` of the bytes (it keeps up with real time)."""
    name, who = "relay.audio_continuity", session_label(history)
    if not [c for c in conns if c.accepted]:
        return _no_connection(name, history)
    client = _client_audio(history)
    if len(client) < 2:
        return verdict(name, Status.UNKNOWN, f"{who}: the client sent fewer than two audio frames")
    frames = sorted(f for c in conns for f in c.audio.frames)
    first, last = client[0][0], client[-1][0]
    client_times = [t for t, _ in client]
    limit = max_gap_ms * MS
    # the client's own pauses (sends further apart than the limit) are not the relay's gaps
    pauses = [(x, y) for x, y in zip(client_times, client_times[1:]) if y - x > limit]
    worst = (0, 0, 0)
    for (a, _), (b, _) in zip(frames, frames[1:]):
        if b < first or a > last + limit or b - a <= worst[0]:
            continue
        if any(w.start_ns <= b and a <= (w.end_ns if w.end_ns is not None else b) for w in faults):
            continue
        gap = b - a - sum(max(0, min(b, y) - max(a, x)) for x, y in pauses)
        if gap > worst[0]:
            worst = (gap, a, b)
    sent = sum(n for _, n in client)
    by_deadline = sum(n for t, n in frames if t <= last + limit)
    received = sum(c.audio.total_bytes for c in conns)
    rate = by_deadline / sent if sent else 1.0
    metrics = {"largest_gap_ms": round(worst[0] / MS, 1), "vendor_rate": round(rate, 4), "client_bytes": sent,
               "vendor_bytes": received}
    problems = []
    if worst[0] > limit:
        problems.append(f"gap of {worst[0] / MS:.0f} ms in the audio reaching the vendor (limit {max_gap_ms:g} ms) "
                        f"at {_ms(history, worst[1])}..{_ms(history, worst[2])} while the client streamed: audio "
                        "sent in bursts")
    if rate < min_rate:
        problems.append(f"the vendor had {by_deadline} of {sent} bytes ({rate:.1%}) {max_gap_ms:g} ms after the "
                        f"client's last frame: it falls behind real time (needs {min_rate:.0%})")
    if problems:
        return verdict(name, Status.FAIL, f"{who}: " + "; ".join(problems), metrics)
    return verdict(name, Status.PASS, f"{who}: largest gap {worst[0] / MS:.0f} ms, vendor had {rate:.1%} of the "
                   "audio on time", metrics)


def audio_delivered(history: History, conns: Sequence[VendorConnection]) -> Verdict:
    """Every byte the client sent reached the vendor, once (byte counts across the connections)."""
    name, who = "relay.audio_delivered", session_label(history)
    if not [c for c in conns if c.accepted]:
        return _no_connection(name, history)
    sent = sum(n for _, n in _client_audio(history))
    received = sum(c.audio.total_bytes for c in conns)
    per = {c.conn_id: c.audio.total_bytes for c in conns if c.accepted}
    metrics = {"client_bytes": sent, "vendor_bytes": received, "lost_bytes": max(0, sent - received),
               "extra_bytes": max(0, received - sent)}
    if received != sent:
        what = "lost" if received < sent else "doubled"
        return verdict(name, Status.FAIL, f"{who}: the client sent {sent} bytes, the vendor received {received} "
                       f"({abs(sent - received)} bytes = {abs(sent - received) / BYTES_PER_S * 1000:.0f} ms {what}); "
                       f"per connection: {per}", metrics, {"per_connection": per})
    return verdict(name, Status.PASS, f"{who}: all {sent} bytes reached the vendor", metrics)


def relayed_transcript(history: History, conns: Sequence[VendorConnection],
                       faults: Sequence[FaultWindow] = ()) -> Verdict:
    """The client got exactly the final words the vendor sent, in order, across every vendor
    connection of the session: a lost or doubled word here is the relay's (a result not
    forwarded, or forwarded twice after a reconnect). Results sent inside a fault window (a
    stall swallowed them before the relay could see them) are the fault's loss, not expected."""
    name, who = "relay.relayed_transcript", session_label(history)
    accepted = [c for c in conns if c.accepted]
    if not accepted:
        return _no_connection(name, history)
    expected = [w for c in accepted for t, is_final, text in c.results
                if is_final and text and not any(f.contains(t) for f in faults) for w in _text.words(text)]
    got = [w.word for w in transcript_words(history)]
    metrics = {"vendor_final_words": len(expected), "client_words": len(got)}
    if got != expected:
        at = next((i for i, (a, b) in enumerate(zip(got, expected)) if a != b), min(len(got), len(expected)))
        return verdict(name, Status.FAIL, f"{who}: the client got {len(got)} final words, the vendor sent "
                       f"{len(expected)}; first difference at word {at}: client {' '.join(got[at:at + 4])!r}, "
                       f"vendor {' '.join(expected[at:at + 4])!r}", metrics,
                       {"client": " ".join(got)[:2000], "vendor": " ".join(expected)[:2000]})
    return verdict(name, Status.PASS, f"{who}: the client got all {len(got)} final words the vendor sent", metrics)


def scripted_words(history: History, conns: Sequence[VendorConnection], script: str, word_ms: int = 300) -> Verdict:
    """For a session without faults: the client's transcript is the scripted vendor's words for
    every byte the client sent, once and in order (audio lost, doubled or split across vendor
    connections shows as lost, doubled or restarted words)."""
    name, who = "relay.scripted_words", session_label(history)
    if not [c for c in conns if c.accepted]:
        return _no_connection(name, history)
    sent = sum(n for _, n in _client_audio(history))
    expected = expected_scripted_words(script, sent, word_ms)
    got = [w.word for w in transcript_words(history)]
    metrics = {"expected_words": len(expected), "client_words": len(got)}
    if got != expected:
        at = next((i for i, (a, b) in enumerate(zip(got, expected)) if a != b), min(len(got), len(expected)))
        return verdict(name, Status.FAIL, f"{who}: for the {sent} bytes the client sent it should hear "
                       f"{len(expected)} words and heard {len(got)}; first difference at word {at}: heard "
                       f"{' '.join(got[at:at + 4])!r}, expected {' '.join(expected[at:at + 4])!r}", metrics,
                       {"client": " ".join(got)[:2000], "expected": " ".join(expected)[:2000]})
    return verdict(name, Status.PASS, f"{who}: all {len(got)} words of the audio sent, once, in order", metrics)


# --- keepalive ------------------------------------------------------------------------------------
def keepalive_in_silence(history: History, conns: Sequence[VendorConnection], silences: Sequence[tuple[int, int]],
                         vendor_timeout_s: float) -> Verdict:
    """Through each client silence longer than the vendor's timeout the vendor connection
    survives: no vendor connection closes inside the silence, and KeepAlive reached the vendor."""
    name, who = "relay.keepalive_in_silence", session_label(history)
    accepted = [c for c in conns if c.accepted]
    if not accepted:
        return _no_connection(name, history)
    long = [(a, b) for a, b in silences if b - a > vendor_timeout_s * 1e9]
    if not long:
        return verdict(name, Status.UNKNOWN, f"{who}: no client silence longer than the vendor's timeout "
                       f"({vendor_timeout_s:g} s) to judge")
    problems, kept = [], 0
    for a, b in long:
        dead = [c for c in accepted if c.closed_ns is not None and a <= c.closed_ns <= b]
        alive = [c for c in accepted if c.open_at(a) and c not in dead]
        ka = sum(1 for c in accepted for t in c.control_times("KeepAlive") if a <= t <= b)
        kept += ka
        for c in dead:
            problems.append(f"the vendor closed {c.conn_id} {c.close_code} {c.close_reason!r} after "
                            f"{(c.closed_ns - a) / 1e9:.1f} s of client silence ({ka} KeepAlive sent in it)")
        if not dead and not alive:
            problems.append(f"no vendor connection was open during the silence at {_ms(history, a)}")
    metrics = {"silences": len(long), "keepalives": kept, "vendor_timeout_s": vendor_timeout_s}
    if problems:
        return verdict(name, Status.FAIL, f"{who}: " + "; ".join(problems) + ": no keepalive during silence", metrics)
    return verdict(name, Status.PASS, f"{who}: the vendor connection survived {len(long)} silence(s) longer than "
                   f"{vendor_timeout_s:g} s ({kept} KeepAlive)", metrics)


# --- vendor faults --------------------------------------------------------------------------------
def fault_recovery(history: History, conns: Sequence[VendorConnection], fault: FaultWindow, script: str,
                   reconnect_within_s: float = 5.0, word_ms: int = 300, in_flight_ms: float = 300.0) -> Verdict:
    """After the fault (the vendor closed or cut the connection, or stalled so that the relay
    closed it), the relay had a new vendor connection within ``reconnect_within_s`` of the
    fault's start and went on streaming. The audio lost may be at most what the client
    sent in the fault window: from ``in_flight_ms`` before the fault (frames on their way when the
    connection died) to the first audio on the new connection. The words lost against a clean
    run of the same audio are measured and reported, not hidden."""
    name, who = "relay.fault_recovery", session_label(history)
    accepted = [c for c in conns if c.accepted]
    if not accepted:
        return _no_connection(name, history)
    dropped = next((c for c in accepted if c.closed_ns is not None and c.closed_ns >= fault.start_ns
                    and c.close_code != 1000), None)
    client = _client_audio(history)
    sent = sum(n for _, n in client)
    clean = len(expected_scripted_words(script, sent, word_ms))
    got = len(transcript_words(history))
    metrics: dict[str, Any] = {"clean_words": clean, "client_words": got, "words_lost": max(0, clean - got)}
    if dropped is None:
        return verdict(name, Status.UNKNOWN, f"{who}: no vendor connection closed abnormally after the fault "
                       f"({fault.kind}) started: the fault did not act", metrics)
    after = [c for c in accepted if c.opened_ns >= dropped.closed_ns]
    attempts = [c for c in conns if c.opened_ns >= dropped.closed_ns]
    metrics["reconnect_attempts"] = len(attempts)
    sent_after = sum(n for t, n in client if t > dropped.closed_ns)
    if not after:
        return verdict(name, Status.FAIL, f"{who}: the vendor connection {dropped.conn_id} dropped "
                       f"({dropped.close_code} {dropped.close_reason!r}) at {_ms(history, dropped.closed_ns)} and was "
                       f"not reconnected: {sent_after / BYTES_PER_S:.1f} s of the client's audio after the drop never "
                       f"reached the vendor; the client got {got} of {clean} words", metrics)
    nxt = after[0]
    delay_s = (nxt.opened_ns - min(fault.start_ns, dropped.closed_ns)) / 1e9
    received = sum(c.audio.total_bytes for c in accepted)
    resumed = nxt.audio.first_ns if nxt.audio.first_ns is not None else nxt.opened_ns
    in_outage = sum(n for t, n in client if fault.start_ns - in_flight_ms * MS <= t <= resumed)
    lost = max(0, sent - received)
    metrics.update(reconnect_delay_ms=round(delay_s * 1000, 1), lost_bytes=lost,
                   lost_ms=round(lost / BYTES_PER_S * 1000, 1), outage_bytes=in_outage)
    problems = []
    if delay_s > reconnect_within_s:
        problems.append(f"reconnected only {delay_s:.1f} s after the fault (bound {reconnect_within_s:g} s)")
    if lost > in_outage:
        problems.append(f"{lost} bytes lost, more than the {in_outage} the client sent during the outage: audio "
                        "lost outside the fault window")
    if received > sent:
        problems.append(f"the vendor received {received - sent} bytes more than the client sent: audio doubled")
    if problems:
        return verdict(name, Status.FAIL, f"{who}: after {dropped.conn_id} dropped ({dropped.close_code}): "
                       + "; ".join(problems), metrics)
    return verdict(name, Status.PASS, f"{who}: reconnected {delay_s * 1000:.0f} ms after the fault, "
                   f"{lost / BYTES_PER_S * 1000:.0f} ms of audio lost in the fault window, "
                   f"{max(0, clean - got)} of {clean} words lost against a clean run", metrics)


def handshake_backoff(history: History, conns: Sequence[VendorConnection], max_attempts_per_s: float = 5.0,
                      connect_within_s: float = 10.0) -> Verdict:
    """Refused vendor handshakes (429, 503) are retried with a backoff, not in a hot loop: at most
    ``max_attempts_per_s`` over the refusals, and a connection is made within
    ``connect_within_s`` of the first refusal once the vendor accepts again (or the client is told
    that it cannot be: its stream closed with an error)."""
    name, who = "relay.handshake_backoff", session_label(history)
    refused = [c for c in conns if not c.accepted]
    if not refused:
        return verdict(name, Status.UNKNOWN, f"{who}: no refused vendor handshake to judge")
    first = refused[0].opened_ns
    accepted = [c for c in conns if c.accepted and c.opened_ns >= first]
    end = accepted[0].opened_ns if accepted else refused[-1].opened_ns
    span_s = max((end - first) / 1e9, 1e-3)
    rate = (len(refused) - 1) / span_s if len(refused) > 1 else 0.0
    metrics = {"refused": len(refused), "attempts_per_s": round(rate, 2),
               "connected_after_ms": round((end - first) / MS, 1) if accepted else None}
    problems = []
    if rate > max_attempts_per_s:
        problems.append(f"{len(refused)} handshakes in {span_s:.2f} s ({rate:.1f}/s, limit {max_attempts_per_s:g}/s): "
                        "a hot retry loop against a vendor that refuses")
    told = [e for _, e in history.events("closed") if getattr(e, "code", 1000) != 1000]
    if not accepted and not told:
        problems.append("no vendor connection was made after the refusals and the client was not told")
    elif accepted and (end - first) / 1e9 > connect_within_s:
        problems.append(f"connected only {(end - first) / 1e9:.1f} s after the first refusal "
                        f"(bound {connect_within_s:g} s)")
    if problems:
        return verdict(name, Status.FAIL, f"{who}: " + "; ".join(problems), metrics)
    return verdict(name, Status.PASS, f"{who}: {len(refused)} refusal(s) retried at {rate:.1f}/s, connected "
                   f"{(end - first) / MS:.0f} ms after the first", metrics)


# --- finalize -------------------------------------------------------------------------------------
def finalize_closes_stream(history: History, conns: Sequence[VendorConnection], end_message: str = "CloseStream") -> Verdict:
    """The client's finalize made the relay send the vendor's end message, and the vendor's last
    final reached the client before the relay closed the client's stream (1000)."""
    name, who = "relay.finalize", session_label(history)
    accepted = [c for c in conns if c.accepted]
    if not accepted:
        return _no_connection(name, history)
    fin = [r.t_ns for r in history.of_kind("control_sent") if r.data.get("message") in ("close_stream", "finalize")]
    if not fin:
        return verdict(name, Status.UNKNOWN, f"{who}: the client never sent its finalize")
    last = accepted[-1]
    ends = [t for t in last.control_times(end_message) if t >= fin[-1]]
    closes = history.events("closed")
    finals = history.finals()
    problems = []
    if not ends:
        problems.append(f"no {end_message} reached the vendor after the client's finalize at {_ms(history, fin[-1])}")
    vendor_finals = [t for t, is_final, text in last.results if is_final and text]
    if closes:
        t_close, closed = closes[-1]
        if getattr(closed, "code", None) != 1000:
            problems.append(f"the relay closed the client's stream with {getattr(closed, 'code', '?')}, not 1000")
        if vendor_finals and (not finals or finals[-1][0] > t_close):
            problems.append("the vendor's last final did not reach the client before the relay closed its stream")
    else:
        problems.append("the relay never closed the client's stream")
    metrics = {"end_messages": len(ends), "vendor_finals": len(vendor_finals), "client_finals": len(finals)}
    if problems:
        return verdict(name, Status.FAIL, f"{who}: " + "; ".join(problems), metrics)
    return verdict(name, Status.PASS, f"{who}: finalize sent {end_message}; the last final arrived before the close",
                   metrics)


# --- memory ---------------------------------------------------------------------------------------
def slope_per_minute(samples: Sequence[tuple[int, int]]) -> float:
    """Least-squares slope of (t_ns, bytes) samples, in bytes per minute."""
    n = len(samples)
    mt = sum(t for t, _ in samples) / n
    mv = sum(v for _, v in samples) / n
    var = sum((t - mt) ** 2 for t, _ in samples)
    if var == 0:
        return 0.0
    return sum((t - mt) * (v - mv) for t, v in samples) / var * 60e9


def memory_growth(samples: Sequence[tuple[int, int]], max_mb_per_min: float, audio_s: float) -> Verdict:
    """The service's RSS grows less than ``max_mb_per_min`` (least-squares slope over the steady
    stream; ``audio_s`` of audio streamed meanwhile, for the message)."""
    name = "relay.memory_growth"
    if len(samples) < 10:
        return verdict(name, Status.UNKNOWN, f"only {len(samples)} memory samples of the service (need 10)")
    slope = slope_per_minute(samples) / 1e6
    metrics = {"rss_growth_mb_per_min": round(slope, 3), "rss_start_mb": round(samples[0][1] / 1e6, 1),
               "rss_end_mb": round(samples[-1][1] / 1e6, 1), "samples": len(samples)}
    if slope > max_mb_per_min:
        return verdict(name, Status.FAIL, f"the service's memory grew {slope:.1f} MB/min over {audio_s:.0f} s of "
                       f"audio (limit {max_mb_per_min:g} MB/min; {metrics['rss_start_mb']} -> "
                       f"{metrics['rss_end_mb']} MB): it keeps what it should let go", metrics)
    return verdict(name, Status.PASS, f"the service's memory grew {slope:.2f} MB/min (limit {max_mb_per_min:g})",
                   metrics)


# --- health ---------------------------------------------------------------------------------------
def health_matches(samples: Sequence[tuple[int, Any]], leg: VendorLeg, field_name: str = "vendor_connections",
                   settle_ms: float = 300.0) -> Verdict:
    """Each health sample's vendor connection count is an integer equal to the accepted vendor
    connections open at that instant (samples within ``settle_ms`` of a connection opening or
    closing are not judged: the two clocks cannot agree at the edge)."""
    name = "relay.health"
    if not samples:
        return verdict(name, Status.UNKNOWN, "no health sample of the service")
    bad, judged = [], 0
    edges = [t for c in leg.accepted() for t in (c.opened_ns, c.closed_ns) if t is not None]
    for t, value in samples:
        if isinstance(value, bool) or not isinstance(value, int):
            bad.append(f"{field_name}={value!r} (not an integer)")
            continue
        if any(abs(t - e) < settle_ms * MS for e in edges):
            continue
        judged += 1
        actual = sum(1 for c in leg.accepted() if c.open_at(t))
        if value != actual:
            bad.append(f"{field_name}={value} while {actual} vendor connection(s) were open")
    metrics = {"samples": len(samples), "judged": judged, "wrong": len(bad)}
    if bad:
        return verdict(name, Status.FAIL, f"health reports wrong vendor connections: {short(bad, 3)}", metrics)
    if not judged:
        return verdict(name, Status.UNKNOWN, "every health sample fell on a connection's opening or closing", metrics)
    return verdict(name, Status.PASS, f"health matched the vendor leg in {judged} sample(s)", metrics)


# --- secrets --------------------------------------------------------------------------------------
def no_key_to_client(history: History, vendor_key: str, also_seen: Sequence[str] = ()) -> Verdict:
    """The vendor key never reaches the client: not in a message, a close reason, a URL or a
    header the client saw, nor in ``also_seen`` (health bodies, pages)."""
    name, who = "relay.no_vendor_key", session_label(history)
    if not vendor_key:
        return verdict(name, Status.UNKNOWN, f"{who}: no vendor key to look for")
    import json

    where = [f"{r.kind} record at {_ms(history, r.t_ns)}" for r in history.records
             if vendor_key in json.dumps(r.data, default=str)]
    where += [f"response {i}" for i, text in enumerate(also_seen) if vendor_key in text]
    if where:
        return verdict(name, Status.FAIL, f"{who}: the vendor key reached the client in {short(where, 3)}",
                       {"leaks": len(where)})
    return verdict(name, Status.PASS, f"{who}: the vendor key appeared in none of {len(history.records)} client "
                   f"records and {len(also_seen)} responses", {"leaks": 0})


# --- nobody in who does not belong --------------------------------------------------------------
REFUSAL_STATUSES = (401, 403)  # what a client author expects for a bad credential (Deepgram: 401 INVALID_AUTH)
REFUSAL_CLOSE_CODES = (1008, 3000, 3003, 4001, 4003, 4401, 4403)  # policy violation / unauthorized, after the upgrade


def intruder_refused(history: History, conns: Sequence[VendorConnection], who: str = "a client without credentials",
                     statuses: Sequence[int] = REFUSAL_STATUSES) -> Verdict:
    """A client that does not belong (``who``: no credentials, a wrong key, another session's
    token) is refused: its handshake answered 401 or 403 (or, after the upgrade, closed with a
    policy / unauthorized code before any result), it got no transcript, and the service opened no
    vendor connection for it (``conns``: the vendor connections that are not a legitimate
    session's, opened while it tried)."""
    name = "relay.intruder_refused"
    failed = history.of_kind("connect_failed")
    connected = history.of_kind("connected")
    words = transcript_words(history)
    vendor = [c for c in conns if c.accepted]
    vendor_bytes = sum(c.audio.total_bytes for c in vendor)
    sent = sum(n for _, n in _client_audio(history))
    metrics: dict[str, Any] = {"handshake_status": None, "client_words": len(words), "audio_sent": sent,
                               "vendor_connections": len(vendor), "vendor_bytes": vendor_bytes}
    problems = []
    if connected:
        metrics["handshake_status"] = 101
        closes = history.events("closed")
        code = getattr(closes[-1][1], "code", None) if closes else None
        if code not in REFUSAL_CLOSE_CODES or words:
            problems.append(f"{who} was let in: the handshake answered 101 and the service took {sent} bytes of its "
                            f"audio (closed with {code if code is not None else 'nothing'})")
    elif failed:
        status = failed[-1].data.get("status")
        metrics["handshake_status"] = status
        if status not in statuses:
            problems.append(f"{who} was refused with {status if status else 'no HTTP answer'} "
                            f"({failed[-1].data.get('error', '')[:80]}), not {' or '.join(map(str, statuses))}: "
                            "its author cannot tell a bad credential from a broken service")
    else:
        return verdict(name, Status.UNKNOWN, f"{who} never tried to connect", metrics)
    if words:
        problems.append(f"it heard {len(words)} transcript words ({' '.join(w.word for w in words[:4])!r} ...)")
    if vendor:
        problems.append(f"the service opened {len(vendor)} vendor connection(s) for it and streamed {vendor_bytes} bytes "
                        "on its vendor key")
    if problems:
        return verdict(name, Status.FAIL, "; ".join(problems), metrics)
    how = (f"refused with {metrics['handshake_status']}" if not connected
           else "closed before any result")
    return verdict(name, Status.PASS, f"{who} was {how}; no vendor connection was opened for it", metrics)


def sessions_isolated(sessions: Sequence[tuple[History, Sequence[VendorConnection], str]]) -> Verdict:
    """Concurrent sessions streaming different scripted audio never see each other's: at the
    client end, no session hears a word only another session's script has; at the vendor end, the
    connections tagged with a session carry only its audio (no more bytes than its client sent)
    and return only its words, and every session that sent audio has a vendor connection of its
    own. ``sessions``: (client history, that session's vendor connections by tag, its script)."""
    name = "relay.sessions_isolated"
    if len(sessions) < 2:
        raise ValueError("sessions_isolated needs two sessions or more")
    own = [set(_text.words(script)) for _, _, script in sessions]
    problems: list[str] = []
    metrics: dict[str, Any] = {"sessions": len(sessions), "foreign_words_heard": 0, "foreign_words_at_vendor": 0,
                               "extra_vendor_bytes": 0}
    ids = [h.session_id for h, _, _ in sessions]
    if len({i for i in ids if i}) < len([i for i in ids if i]):
        problems.append(f"two clients were given the same session id ({short([i for i in ids if i], 4)})")
    for i, (history, conns, _) in enumerate(sessions):
        foreign = set().union(*(own[j] for j in range(len(sessions)) if j != i)) - own[i]
        if not foreign:
            raise ValueError(f"session {i + 1}'s script shares every word with the others: nothing tells them apart")
        who = session_label(history)
        heard = [w.word for w in transcript_words(history) if w.word in foreign]
        if heard:
            metrics["foreign_words_heard"] += len(heard)
            problems.append(f"{who} heard {len(heard)} words of another session's audio ({' '.join(heard[:4])!r} ...)")
        sent = sum(n for _, n in _client_audio(history))
        accepted = [c for c in conns if c.accepted]
        if sent and not accepted:
            problems.append(f"{who} sent {sent} bytes and no vendor connection carries its tag: its audio went "
                            "out on another session's connection")
            continue
        received = sum(c.audio.total_bytes for c in accepted)
        if received > sent:
            metrics["extra_vendor_bytes"] += received - sent
            problems.append(f"the vendor connections of {who} got {received} bytes, {received - sent} more than its "
                            "client sent: another session's audio")
        at_vendor = [w for c in accepted for _, is_final, text in c.results if is_final
                     for w in _text.words(text) if w in foreign]
        if at_vendor:
            metrics["foreign_words_at_vendor"] += len(at_vendor)
            problems.append(f"the vendor returned another session's words on {who}'s connection "
                            f"({' '.join(at_vendor[:4])!r} ...)")
    if problems:
        return verdict(name, Status.FAIL, "sessions see each other's: " + "; ".join(problems), metrics)
    return verdict(name, Status.PASS, f"{len(sessions)} concurrent sessions each heard and streamed only their own "
                   "audio", metrics)

"""What the browser suite concludes from a page: verdicts, and a session history read off the wire.

The page's WebSocket frame log (``harness.browser.BrowserSession.frames``) is turned into an
ordinary :class:`~harness.history.History`, so the same integrity checks that judge the drivers
judge the browser client too, and the history is saved with the scenario like any other.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from harness.browser import BrowserSession, ConsoleEntry
from harness.checks import latency as _latency
from harness.checks import session as _session
from harness.checks import text as _text
from harness.checks._common import short, verdict
from harness.checks.integrity import HypWord, align
from harness.checks.verdict import Status, Verdict
from harness.history import History
from harness.protocols import get_codec
from harness.protocols.events import Closed, Ready

HEADER_BYTES = 8  # the reference protocol's offset header on every audio frame

# What Chromium itself logs when a connection attempt fails while a fault is on: expected then,
# and not the page's doing. Anything else in the console is.
NETWORK_NOISE = re.compile(r"net::ERR_|WebSocket connection to '[^']*' failed")


# --- the wire, as a history ----------------------------------------------------------------------
def fill_history(history: History, browser: BrowserSession, protocol: str = "reference",
                 sockets: Sequence[Any] = (), http: Sequence[Any] = ()) -> History:
    """Replace ``history``'s records with what the page sent and received (its fault windows stay).

    Per socket: ``connect`` when the page opened it, ``connected`` when its handshake completed
    (``sockets``: open/close reports from inside the page; without them, at its first message),
    ``audio_sent`` per binary frame, ``control_sent`` per text frame sent, ``event`` per message
    decoded with the client's codec, ``closed`` with the code the page saw. ``http`` calls of the
    page become ``http`` records. Messages that do not decode are kept as notes, never dropped.
    """
    codec = get_codec(protocol)
    offsets = "offsets" in codec.capabilities  # binary frames carry a byte-offset header
    history.records.clear()
    opens = _match_opens(browser, [e for e in sockets if e.kind == "open"])
    items: list[tuple[int, int, Any]] = [(s.opened_ns, 0, s) for s in browser.sockets]
    items += [(f.t_ns, 1, f) for f in browser.frames]
    items += [(e.t_ns, 2, e) for e in sockets if e.kind == "close"]
    items += [(e.t_ns, 3, (index, e)) for index, e in opens.items()]
    items += [(c.t_ns, 4, c) for c in http]
    items.sort(key=lambda item: (item[0], item[1]))
    if items:
        history.t0_ns = min(history.t0_ns, items[0][0])
    opened: dict[int, int] = {}
    heard: set[int] = set()
    running: dict[int, int] = {}  # bytes sent per socket, for a protocol without offset headers
    for t_ns, order, item in items:
        if order == 0:
            opened[item.index] = t_ns
            history.add("connect", t_ns=t_ns, attempt=item.index, url=item.url,
                        last_segment_id=_query_value(item.url, "last_segment_id"))
        elif order == 2:
            history.add_event(Closed(int(item.value), item.reason), t_ns=t_ns)
        elif order == 3:
            index, event = item
            history.add("connected", t_ns=t_ns, attempt=index, latency_ms=round(event.value, 3))
        elif order == 4:
            history.add("http", t_ns=t_ns, method=item.method, path=item.path, status=item.status,
                        latency_ms=item.latency_ms, error=None if item.status else "no answer")
        elif item.direction == "sent" and item.kind == "binary":
            if offsets and item.offset is not None:
                history.add("audio_sent", t_ns=t_ns, offset=item.offset, length=item.size - HEADER_BYTES)
            else:
                start = running.get(item.socket, 0)
                running[item.socket] = start + item.size
                history.add("audio_sent", t_ns=t_ns, offset=start, length=item.size)
        elif item.direction == "sent":
            msg = item.json()
            history.add("control_sent", t_ns=t_ns, message=(msg or {}).get("type") or item.text)
        elif item.kind == "text" and item.text is not None:
            if item.socket not in heard and not sockets:
                latency = (t_ns - opened.get(item.socket, t_ns)) / 1e6
                history.add("connected", t_ns=t_ns, attempt=item.socket, latency_ms=round(latency, 3))
            heard.add(item.socket)
            try:
                events = codec.decode(item.text)
            except Exception as exc:  # a truncated or foreign message: keep it visible
                history.add("note", t_ns=t_ns, text=f"undecodable message on socket {item.socket}: {exc}",
                            size=item.size)
                continue
            for event in events:
                history.add_event(event, t_ns=t_ns)
                if isinstance(event, Ready) and event.session_id:
                    history.session_id = history.session_id or event.session_id
    return history


def _match_opens(browser: BrowserSession, opens: Sequence[Any]) -> dict[int, Any]:
    """Which socket each in-page "open" report belongs to: the latest one with that URL opened
    before it and not yet closed (refused attempts to the same URL closed before it opened)."""
    out: dict[int, Any] = {}
    for event in opens:
        candidates = [s for s in browser.sockets
                      if s.url == event.url and s.index not in out and s.opened_ns <= event.t_ns
                      and (s.closed_ns is None or s.closed_ns >= event.t_ns)]
        if candidates:
            out[candidates[-1].index] = event
    return out


def _query_value(url: str, key: str) -> str | None:
    match = re.search(rf"[?&]{re.escape(key)}=([^&#]*)", url)
    return match.group(1) if match else None


def audio_bytes(history: History) -> int:
    """One past the highest audio byte the page ever sent."""
    return max((r.data["offset"] + r.data["length"] for r in history.of_kind("audio_sent")), default=0)


# --- verdicts ------------------------------------------------------------------------------------
def console(entries: Sequence[ConsoleEntry], who: str, allow_network_errors: bool = False) -> Verdict:
    """No console error and no uncaught exception (Chromium's own failed-connection lines are
    allowed where a fault made them expected)."""
    errors = [e for e in entries if e.type in ("error", "pageerror")]
    noise = [e for e in errors if allow_network_errors and e.type == "error" and NETWORK_NOISE.search(e.text)]
    real = [e for e in errors if e not in noise]
    evidence = {"errors": [{"type": e.type, "text": e.text[:500], "location": e.location} for e in real],
                "network_errors_ignored": len(noise)}
    if real:
        return verdict("browser.console", Status.FAIL,
                       f"{who}: {len(real)} console error(s): " + short([f"{e.type}: {e.text[:160]!r}" for e in real], 3),
                       {}, evidence)
    extra = f" ({len(noise)} failed-connection line(s) from Chromium during the fault)" if noise else ""
    return verdict("browser.console", Status.PASS, f"{who}: no console errors{extra}", {}, evidence)


def storage(snapshots: Sequence[tuple[str, dict[str, Any]]], who: str, transcript: str = "") -> Verdict:
    """Nothing in localStorage, sessionStorage or IndexedDB at any of the ``snapshots`` (when, dump)."""
    found: dict[str, list[str]] = {}  # what is stored -> when it was seen
    phi = False
    words = set(_text.words(transcript))
    for when, dump in snapshots:
        for area in ("localStorage", "sessionStorage"):
            for key, value in (dump.get(area) or {}).items():
                held = words & set(_text.words(str(value)))
                phi = phi or bool(held)
                what = f"holds transcript words {sorted(held)[:5]}" if held else f"= {str(value)[:60]!r}"
                found.setdefault(f"{area}[{key!r}] {what}", []).append(when)
        databases = dump.get("indexedDB")
        if databases is None:
            found.setdefault("IndexedDB could not be listed", []).append(when)
        for name in databases or []:
            found.setdefault(f"IndexedDB database {name!r}", []).append(when)
    evidence = {"snapshots": [{"when": w, **d} for w, d in snapshots]}
    if not snapshots:
        return verdict("browser.storage", Status.UNKNOWN, f"{who}: browser storage was never read", {}, evidence)
    if found:
        lead = "the transcript is kept in browser storage" if phi else "the page keeps data in browser storage"
        items = [f"{what} ({', '.join(whens)})" for what, whens in found.items()]
        return verdict("browser.storage", Status.FAIL, f"{who}: {lead}: " + short(items, 3), {}, evidence)
    return verdict("browser.storage", Status.PASS,
                   f"{who}: localStorage, sessionStorage and IndexedDB empty ({', '.join(w for w, _ in snapshots)})",
                   {}, evidence)


def session_setup(setup_ms: float | None, who: str, limit_ms: float = 3000.0) -> Verdict:
    """Start pressed -> status Connected (microphone, session creation, stream open, ready)."""
    if setup_ms is None:
        return verdict("browser.session_setup", Status.FAIL, f"{who}: the page never showed Connected after Start")
    metrics = {"browser_setup_ms": [round(setup_ms, 1)]}
    if setup_ms > limit_ms:
        return verdict("browser.session_setup", Status.FAIL,
                       f"{who}: the session took {setup_ms:.0f} ms to set up (Start -> Connected), over {limit_ms:.0f} ms",
                       metrics)
    return verdict("browser.session_setup", Status.PASS, f"{who}: set up in {setup_ms:.0f} ms (limit {limit_ms:.0f} ms)", metrics)


def chunks(counter: int, history: History, who: str) -> Verdict:
    """The page counts chunks, and never more than it really sent."""
    sent = len(history.of_kind("audio_sent"))
    evidence = {"counter": counter, "audio_frames_sent": sent}
    if counter <= 0:
        return verdict("browser.chunks", Status.FAIL, f"{who}: the chunk counter shows {counter} ({sent} frames sent)", {}, evidence)
    if counter > sent:
        return verdict("browser.chunks", Status.FAIL,
                       f"{who}: the page counts {counter} chunks but only {sent} audio frames went out", {}, evidence)
    return verdict("browser.chunks", Status.PASS, f"{who}: {counter} chunks counted, {sent} audio frames on the wire", {}, evidence)


def transcript(words_on_screen: Sequence[str], baseline: Sequence[str], who: str, where: str) -> Verdict:
    """The words on screen against a baseline: none lost, none doubled (exact)."""
    hyp = [HypWord(w, 0, i) for i, w in enumerate(_text.words(" ".join(words_on_screen)))]
    ref = _text.words(" ".join(baseline))
    al = align(ref, hyp)
    lost = sum(r["positions"][1] - r["positions"][0] + 1 for r in al.lost)
    extra = sum(r["positions"][1] - r["positions"][0] + 1 for r in al.extra)
    metrics = {"lost_words": lost, "duplicated_words": extra}
    evidence = {"baseline": " ".join(ref)[:2000], "on_screen": " ".join(h.word for h in hyp)[:2000],
                "lost": al.lost, "extra": al.extra}
    if not ref:
        return verdict("browser.transcript", Status.UNKNOWN, f"{who}: no baseline words to compare {where} with", {}, evidence)
    if lost or extra:
        parts = []
        if lost:
            parts.append(f"{lost} word(s) lost: " + short([f"{r['words']!r} after {r['after']!r}" for r in al.lost], 2))
        if extra:
            parts.append(f"{extra} word(s) doubled or extra: " + short([f"{r['kind']} {r['words']!r}" for r in al.extra], 2))
        return verdict("browser.transcript", Status.FAIL, f"{who}: {where}: " + "; ".join(parts), metrics, evidence)
    return verdict("browser.transcript", Status.PASS, f"{who}: {where}: all {len(ref)} words, each once", metrics, evidence)


def screen_matches_wire(on_screen: Sequence[str], history: History, who: str, where: str) -> Verdict:
    """What the page shows is what the server sent it (no final dropped or doubled on screen)."""
    shown, sent = _text.words(" ".join(on_screen)), _text.words(history.transcript())
    evidence = {"on_screen": " ".join(shown)[:2000], "from_server": " ".join(sent)[:2000]}
    if shown != sent:
        return verdict("browser.screen", Status.FAIL,
                       f"{who}: {where} shows {len(shown)} words but the server sent {len(sent)}: "
                       f"{' '.join(shown)[:80]!r} vs {' '.join(sent)[:80]!r}", {}, evidence)
    return verdict("browser.screen", Status.PASS, f"{who}: {where} shows the {len(sent)} words the server sent", {}, evidence)


def session_page(results: dict[str, str | None], who: str) -> Verdict:
    """The session page shows every pipeline result, each ready."""
    missing = [s for s, state in results.items() if state is None]
    failed = [s for s, state in results.items() if state not in (None, "ready")]
    if missing or failed:
        parts = ([f"not shown: {', '.join(missing)}"] if missing else []) + \
                ([f"failed: {', '.join(failed)}"] if failed else [])
        return verdict("browser.session_page", Status.FAIL, f"{who}: session page results " + "; ".join(parts),
                       {}, {"results": results})
    return verdict("browser.session_page", Status.PASS,
                   f"{who}: all {len(results)} results shown ({', '.join(results)})", {}, {"results": results})


def reconnect(statuses: Sequence[str], status_text: dict[str, str], sockets: int, who: str,
              after_index: int = 0) -> Verdict:
    """After the fault the page said it was reconnecting, then was connected again."""
    seen = list(statuses[after_index:])
    evidence = {"statuses_after_fault": seen, "all_statuses": list(statuses), "sockets_opened": sockets}
    rec, con = status_text["reconnecting"], status_text["connected"]
    if rec not in seen:
        shown = " -> ".join(seen) or "(no change)"
        return verdict("browser.reconnect", Status.FAIL,
                       f"{who}: the page did not reconnect after the stream dropped: status {shown}, "
                       f"{sockets} WebSocket(s) opened in all", {}, evidence)
    if con not in seen[seen.index(rec):]:
        return verdict("browser.reconnect", Status.FAIL,
                       f"{who}: the page said {rec!r} but never got back to {con!r}: " + " -> ".join(seen), {}, evidence)
    return verdict("browser.reconnect", Status.PASS,
                   f"{who}: {' -> '.join(seen)} ({sockets} WebSocket(s) opened in all)", {}, evidence)


def microphone_denied(error: str, status: str, sockets: int, audio_frames: int, config: Any, who: str) -> Verdict:
    """Denied the microphone, the page says so in words and opens no stream."""
    expected = config.microphone_denied
    offline = config.status["offline"]
    evidence = {"error": error, "status": status, "sockets_opened": sockets, "audio_frames_sent": audio_frames}
    problems = []
    if expected.lower() not in error.lower():
        problems.append(f"the page said {error!r}" if error else "the page showed no error at all")
    if status != offline:
        problems.append(f"the status says {status!r}, not {offline!r}")
    if sockets or audio_frames:
        problems.append(f"{sockets} WebSocket(s) opened and {audio_frames} audio frame(s) sent without a microphone")
    if problems:
        return verdict("browser.microphone_denied", Status.FAIL,
                       f"{who}: microphone denied, expected the page to say {expected!r}: " + "; ".join(problems),
                       {}, evidence)
    return verdict("browser.microphone_denied", Status.PASS,
                   f"{who}: the page said {error!r}, status {status!r}, no stream opened", {}, evidence)


def layout(boxes: dict[str, dict[str, Any] | None], viewport: dict[str, int], scroll_width: int, who: str,
           where: str) -> Verdict:
    """Every control is visible and inside the viewport's width; the page does not scroll sideways."""
    width = viewport["width"]
    problems = []
    for name, box in boxes.items():
        if box is None:
            problems.append(f"{name} is not visible")
        elif box["x"] < 0 or box["x"] + box["width"] > width + 1:
            problems.append(f"{name} spans x={box['x']:.0f}..{box['x'] + box['width']:.0f}, outside the {width} px viewport")
    if scroll_width > width + 1:
        problems.append(f"the page is {scroll_width} px wide on a {width} px screen (sideways scrolling)")
    evidence = {"boxes": boxes, "viewport": viewport, "scroll_width": scroll_width}
    if problems:
        return verdict("browser.layout", Status.FAIL, f"{who}: {where}: " + short(problems, 4), {}, evidence)
    return verdict("browser.layout", Status.PASS,
                   f"{who}: {where}: {', '.join(boxes)} visible within {width}x{viewport['height']}", {}, evidence)


def session_create(history: History, pattern: re.Pattern[str] | None, who: str) -> Verdict:
    """The page's session-creating POST, timed by the browser (``session_create_ms``)."""
    name = "browser.session_create"
    if pattern is None:
        return verdict(name, Status.UNKNOWN, f"{who}: the client config names no session_create path", {})
    calls = [r.data for r in history.of_kind("http")
             if str(r.data.get("method")).upper() == "POST" and pattern.search(str(r.data.get("path", "")).split("?")[0])]
    samples = [float(c["latency_ms"]) for c in calls
               if c.get("status") and 200 <= int(c["status"]) < 300 and c.get("latency_ms") is not None]
    evidence = {"calls": calls}
    if not calls:
        return verdict(name, Status.UNKNOWN, f"{who}: no POST matching {pattern.pattern!r} was seen",
                       {"session_create_ms": []}, evidence)
    if not samples:
        return verdict(name, Status.FAIL, f"{who}: session creation failed: " + short([str(c.get("status")) for c in calls], 3),
                       {"session_create_ms": []}, evidence)
    return verdict(name, Status.PASS, f"{who}: session created in {max(samples):.0f} ms",
                   {"session_create_ms": samples}, evidence)


def latencies(history: History, config: Any, who: str, speech: bool = False) -> list[Verdict]:
    """What a user of the page waited for: session creation, stream handshakes, the pipeline after
    Stop, each final (outside fault windows) and, for real speech, the first words.

    A final's latency runs from its segment's end as the server reports it: for a speech engine,
    the moment its endpointer decided the pause ended the segment.
    """
    out = [session_create(history, config.session_create, who), _latency.connect(history),
           _latency.pipeline_latency(history), _latency.final_latency(history)]
    if speech:
        out.append(_latency.first_partial(history))
    return out


def success(history: History, verdicts: Sequence[Verdict]) -> Verdict:
    """``session_success``: the session ended with close 1000 and none of ``verdicts`` failed."""
    return _session.session_success(history, list(verdicts))

"""Each final is delivered once per connection (PROTOCOL.md: "Each final is sent once per
connection"; a replay after a reconnect comes on the new connection, once).

A final delivered twice on one connection shows a user the same sentence twice and makes a client
that appends finals store it twice. With segment ids (the protocol's ``segment_ids`` capability)
a second final with the same id on one connection is the defect; without them (Deepgram-style
protocols, where the codec numbers finals in order) the same text over the same times twice on one
connection is. Empty finals are left out of the second rule: an empty ``is_final`` at a pause or on
finalize says nothing was heard, and two of them are not a doubled sentence.
"""

from __future__ import annotations

from typing import Any

from harness.checks._common import session_label, short, verdict
from harness.checks.verdict import Status, Verdict
from harness.history import History
from harness.protocols.events import Final, event_from_dict


def _connections(history: History) -> list[list[tuple[int, Final]]]:
    """The finals received on each connection, in order; a ``connect`` record starts a connection."""
    out: list[list[tuple[int, Final]]] = []
    for r in history.records:
        if r.kind == "connect":
            out.append([])
        elif r.kind == "event" and r.data.get("event", {}).get("type") == "final":
            if not out:  # a history without connect records (hand-made, or a browser log): one connection
                out.append([])
            event = event_from_dict(r.data["event"])
            if isinstance(event, Final):
                out[-1].append((r.t_ns, event))
    return out


def finals_once_per_connection(history: History, segment_ids: bool = True) -> Verdict:
    """FAIL naming the connection, the segment and both arrival times when one connection delivered
    a final twice; ``segment_ids``: whether the protocol's finals carry the server's ids."""
    name, who = "integrity.finals_once_per_connection", session_label(history)
    connections = _connections(history)
    doubled: list[dict[str, Any]] = []
    total = 0
    for index, finals in enumerate(connections):
        seen: dict[Any, int] = {}
        for t_ns, f in finals:
            total += 1
            if segment_ids:
                key: Any = f.segment_id
            elif f.text.strip():
                key = (f.text.strip(), f.start_ms, f.end_ms)
            else:
                continue
            if key in seen:
                doubled.append({"connection": index, "segment_id": f.segment_id, "text": f.text,
                                "start_ms": f.start_ms, "end_ms": f.end_ms,
                                "first_t_ms": round(history.ms_since_t0(seen[key])),
                                "again_t_ms": round(history.ms_since_t0(t_ns))})
            else:
                seen[key] = t_ns
    evidence = {"connections": len(connections), "finals": total, "doubled": doubled,
                "keyed_by": "segment id" if segment_ids else "text and times"}
    if doubled:
        described = [f"segment {d['segment_id']} {d['text']!r} ({d['start_ms']}-{d['end_ms']} ms) on connection "
                     f"{d['connection']} at +{d['first_t_ms']} ms and again at +{d['again_t_ms']} ms" for d in doubled]
        return verdict(name, Status.FAIL, f"{who}: {len(doubled)} final(s) delivered twice on one connection: "
                       + short(described, 3), {}, evidence)
    if not connections:
        return verdict(name, Status.UNKNOWN, f"{who}: no connection was made, so no delivery to judge", {}, evidence)
    return verdict(name, Status.PASS, f"{who}: {total} final(s) over {len(connections)} connection(s), "
                   "none delivered twice on one", {}, evidence)

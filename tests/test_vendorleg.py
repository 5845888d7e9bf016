"""The vendor-leg record: parsing, its queries, merging the proxy's view into the server's."""

from __future__ import annotations

import pytest

from harness.history import FaultWindow
from harness.vendorleg import AudioLog, VendorConnection, VendorLeg, VendorLegError

MS = 1_000_000


def _conn(conn_id: str, opened: int, closed: int | None, frames: list[int], **kw) -> VendorConnection:
    audio = AudioLog(frames=[(t * MS, 3200) for t in frames], total_frames=len(frames),
                     total_bytes=3200 * len(frames))
    return VendorConnection(conn_id=conn_id, protocol="deepgram", opened_ns=opened * MS,
                            closed_ns=None if closed is None else closed * MS, audio=audio, **kw)


def test_round_trip_keeps_every_field() -> None:
    leg = VendorLeg([_conn("c1", 0, 900, [100, 200, 800], tag="s-1", close_code=1000,
                           controls=[(300 * MS, "KeepAlive")], results=[(400 * MS, True, "alpha")],
                           faults=[FaultWindow("vendor-close", {"code": 1011}, 500 * MS, 510 * MS)])])
    again = VendorLeg.from_json(leg.to_json())
    assert again == leg
    assert again.connections[0].final_texts() == ["alpha"]


def test_largest_gap_within_a_window_and_past_the_cap() -> None:
    c = _conn("c1", 0, None, [100, 200, 800, 900])
    assert c.audio.largest_gap_ns() == 600 * MS
    assert c.audio.largest_gap_ns(start_ns=800 * MS) == 100 * MS
    c.audio.total_frames += 50  # frames folded into buckets: only the whole-connection figure is exact
    c.audio.max_gap_ns = 2000 * MS
    assert c.audio.truncated and c.audio.largest_gap_ns(start_ns=800 * MS) == 2000 * MS


def test_overlap_is_an_instant_with_both_open() -> None:
    a, b, c = _conn("a", 0, 500, []), _conn("b", 400, None, []), _conn("c", 500, 600, [])
    assert a.overlaps(b) and b.overlaps(a)
    assert not a.overlaps(c)  # c opened as a closed: a reconnect, not a second connection
    refused = _conn("r", 410, 411, [], handshake_status=429)
    assert not b.overlaps(refused)


def test_merge_adds_the_proxys_faults_and_refusals() -> None:
    server = VendorLeg([_conn("c1", 0, 900, [100])])
    proxy = VendorLeg([
        _conn("c1", 0, 900, [], faults=[FaultWindow("stall", {}, 200 * MS, 300 * MS)], closed_by="proxy"),
        _conn("c2", 950, 951, [], handshake_status=429),
    ])
    merged = server.merge(proxy)
    assert [c.conn_id for c in merged.connections] == ["c1", "c2"]
    assert merged.connections[0].faults[0].kind == "stall"
    assert merged.connections[0].closed_by == "proxy"
    assert [c.conn_id for c in merged.accepted()] == ["c1"]


@pytest.mark.parametrize("data, message", [
    ({}, '"connections" list'),
    ({"connections": [{"protocol": "deepgram", "opened_ns": 1}]}, "missing field 'conn_id'"),
    ({"connections": [{"conn_id": "c", "protocol": "deepgram", "opened_ns": "soon"}]}, "'opened_ns' must be int"),
    ({"connections": [{"conn_id": "c", "protocol": "deepgram", "opened_ns": 1, "audio": {"frames": [[1]]}}]},
     "connections[0]: malformed"),
])
def test_bad_records_name_what_is_wrong(data, message) -> None:
    with pytest.raises(VendorLegError, match=message.replace("[", r"\[").replace("]", r"\]")):
        VendorLeg.from_dict(data)

"""The clients group's checks on hand-made histories and vendor legs: a row measures recovery,
words lost and doubled, reconnect delay and attempts; the documented-behaviour check passes a row
that does what the library says and fails one that does not; the SLO gate judges a row's own
metrics and fails on a threshold it misses."""

from __future__ import annotations

from harness import slo
from harness.checks.clients import Expectation, baseline_row, client_row, documented_behaviour, slo_gate
from harness.checks.verdict import Status
from harness.history import FaultWindow, History
from harness.protocols.events import Final
from harness.vendorleg import AudioLog, VendorConnection

MS = 1_000_000
CHUNK = 3200  # 100 ms of 16 kHz s16le
SCRIPT = "alpha bravo charlie delta echo foxtrot golf hotel india juliet"


def client(frames: int = 60) -> History:
    """A client library given ``frames`` 100 ms chunks, one every 100 ms from t=0."""
    h = History(t0_ns=0)
    for i in range(frames):
        h.add("audio_sent", t_ns=i * 100 * MS, offset=i * CHUNK, length=CHUNK)
    return h


def deliver(h: History, words: list[str], t_ms: int) -> None:
    """The library handed the application one final per word, 1 ms apart from ``t_ms``."""
    start = len(h.finals())
    for i, w in enumerate(words):
        h.add_event(Final(start + i, w, 0, 300), t_ns=(t_ms + i) * MS)


def conn(cid: str, opened_ms: int, closed_ms: int | None, results: list[tuple[int, str]] = (), *,
         status: int = 101, close_code: int | None = 1000, audio_bytes: int = 0) -> VendorConnection:
    return VendorConnection(conn_id=cid, protocol="deepgram", opened_ns=opened_ms * MS,
                            closed_ns=None if closed_ms is None else closed_ms * MS, handshake_status=status,
                            close_code=close_code if status == 101 else None,
                            audio=AudioLog(total_bytes=audio_bytes),
                            results=[(t * MS, True, text) for t, text in results])


def window(kind: str, start_ms: int, end_ms: int | None) -> FaultWindow:
    return FaultWindow(kind, {}, start_ms * MS, None if end_ms is None else end_ms * MS)


# --- the row ------------------------------------------------------------------------------------
def test_a_client_that_reconnects_after_a_drop_is_recovered_with_its_delay_and_attempts():
    h = client()
    deliver(h, ["alpha", "bravo"], 1500)
    deliver(h, ["alpha", "bravo", "charlie"], 5000)
    conns = [conn("p-1", 0, 2000, [(1400, "alpha bravo")], close_code=1011),
             conn("p-2", 2150, 6500, [(4900, "alpha bravo charlie")])]
    row = client_row(h, conns, window("vendor_error", 2000, 2001), baseline_words=6)
    assert row.status is Status.PASS
    m = row.metrics
    assert m["client_recovered"] == 1 and m["client_reconnect_delay_ms"] == 150.0 and m["client_attempts"] == 1
    assert m["client_words_lost"] == 1 and m["client_words_doubled"] == 0
    assert "recovered, reconnected after 150 ms" in row.message


def test_a_client_that_never_reconnects_is_not_recovered_and_its_lost_words_counted():
    h = client()
    deliver(h, ["alpha", "bravo"], 1500)
    conns = [conn("p-1", 0, 2000, [(1400, "alpha bravo")], close_code=1006)]
    row = client_row(h, conns, window("cut", 2000, 2000), baseline_words=18)
    assert row.metrics["client_recovered"] == 0 and row.metrics["client_reconnect_delay_ms"] is None
    assert row.metrics["client_words_lost"] == 16 and row.metrics["client_attempts"] == 0
    assert "did not recover, no reconnect" in row.message


def test_results_swallowed_by_a_stall_are_not_a_recovery():
    h = client()
    deliver(h, ["alpha"], 1000)
    # the stalled connection's later results are in the record (sent by the vendor) but inside the window
    conns = [conn("p-1", 0, 6100, [(900, "alpha"), (3000, "bravo charlie")])]
    stall = window("stall", 2000, 6100)
    row = client_row(h, conns, stall, baseline_words=6, windows=[stall])
    assert row.metrics["client_recovered"] == 0
    # the same results outside a window, and delivered: recovered
    deliver(h, ["bravo", "charlie"], 3100)
    assert client_row(h, conns, window("stall", 2000, 2500), baseline_words=6,
                      windows=[window("stall", 2000, 2500)]).metrics["client_recovered"] == 1


def test_refusals_give_the_delay_from_the_first_refusal_and_every_attempt():
    h = client()
    deliver(h, ["alpha", "bravo"], 5000)
    conns = [conn("r1", 0, 0, status=429), conn("r2", 100, 100, status=429), conn("r3", 2100, 2100, status=429),
             conn("ok", 4100, 7000, [(4900, "alpha bravo")])]
    row = client_row(h, conns, window("refuse_handshake", 0, 0), baseline_words=2)
    assert row.metrics["client_attempts"] == 4 and row.metrics["client_reconnect_delay_ms"] == 4100.0
    assert row.metrics["client_recovered"] == 1


def test_words_delivered_more_often_than_the_vendor_sent_them_are_doubled():
    h = client()
    deliver(h, ["alpha", "bravo", "alpha", "bravo"], 1000)  # the library replayed a result
    conns = [conn("p-1", 0, 6000, [(900, "alpha bravo")])]
    row = client_row(h, conns, window("vendor_error", 500, 501), baseline_words=2)
    assert row.metrics["client_words_doubled"] == 2


def test_a_silence_is_the_fault_when_there_is_no_window_and_nothing_is_unknown_without_either():
    h = client(10)
    deliver(h, ["alpha"], 9000)
    conns = [conn("p-1", 0, 9500, [(8900, "alpha")])]
    assert client_row(h, conns, None, baseline_words=1, silences=[(1000 * MS, 9000 * MS)]).metrics[
        "client_recovered"] == 1
    assert client_row(h, conns, None, baseline_words=1).status is Status.UNKNOWN
    assert client_row(History(t0_ns=0), [], window("cut", 0, 0), baseline_words=1).status is Status.UNKNOWN


# --- the documented behaviour -----------------------------------------------------------------------
def _row(recovered: int, delay_ms: float | None, attempts: int):
    h = client()
    if recovered:
        deliver(h, ["alpha"], 5000)
    conns = [conn("p-1", 0, 2000, [(1000, "x")], close_code=1011)]
    if delay_ms is not None:
        conns.append(conn("p-2", int(2000 + delay_ms), 6000, [(4900, "alpha")] if recovered else []))
    conns += [conn(f"r{i}", 2001 + i, 2001 + i, status=503) for i in range(attempts - len(conns) + 1)]
    return client_row(h, conns, window("vendor_error", 2000, 2001), baseline_words=2)


def test_a_row_that_does_as_documented_passes():
    v = documented_behaviour(_row(1, 150, 1), Expectation(True, 0.1, 4, "reconnect after 0.1 s"))
    assert v.status is Status.PASS and v.metrics["client_findings"] == 0
    assert documented_behaviour(_row(0, None, 0), Expectation(False)).status is Status.PASS


def test_a_row_that_differs_from_the_documentation_fails_naming_each_difference():
    v = documented_behaviour(_row(0, 4400, 1), Expectation(True, 4.0, text="reconnect after 4 s"))
    assert v.status is Status.FAIL and "did not recover, documented: recovers" in v.message
    slow = documented_behaviour(_row(1, 9000, 1), Expectation(True, 4.0))
    assert slow.status is Status.FAIL and "reconnected after 9000 ms, documented 4 s" in slow.message
    fast = documented_behaviour(_row(1, 100, 1), Expectation(True, 4.0))
    assert fast.status is Status.FAIL and "documented 4 s" in fast.message
    many = documented_behaviour(_row(1, 150, 6), Expectation(True, 0.1, 4))
    assert many.status is Status.FAIL and "documented at most 4" in many.message and many.metrics["client_findings"] == 1
    unmeasured = client_row(client(), [], None, baseline_words=1)
    assert documented_behaviour(unmeasured, Expectation(True)).status is Status.UNKNOWN


# --- the baseline -----------------------------------------------------------------------------------
def test_a_clean_run_with_every_word_once_over_one_connection_has_no_finding():
    h = client(10)  # 1 s: 3 words of 300 ms
    deliver(h, ["alpha", "bravo", "charlie"], 900)
    v = baseline_row(h, [conn("p-1", 0, 1200, [(800, "alpha bravo charlie")])], SCRIPT)
    assert v.status is Status.PASS and v.metrics["client_findings"] == 0 and v.metrics["client_expected_words"] == 3


def test_a_clean_run_that_loses_its_tail_has_a_finding():
    h = client(10)
    deliver(h, ["alpha", "bravo"], 900)
    v = baseline_row(h, [conn("p-1", 0, 1200, [(800, "alpha bravo")]), conn("p-2", 1300, 1400)], SCRIPT)
    assert v.metrics["client_words_lost"] == 1 and v.metrics["client_findings"] == 2
    assert "1 of the 3 words of the audio never reached the application" in v.message
    assert "2 vendor connections" in v.message


# --- the SLO gate -----------------------------------------------------------------------------------
GATE = slo.loads("""
[slo.client_words_doubled]
custom = true
thresholds = ["max<1"]
[slo.client_attempts_per_s]
custom = true
thresholds = ["max<5"]
""")


def test_the_gate_passes_a_row_within_its_thresholds_and_leaves_out_metrics_it_lacks():
    row = _row(1, 150, 1)
    verdicts = slo_gate(row, GATE.thresholds)
    assert [(v.name, v.status) for v in verdicts] == [("slo.client_words_doubled", Status.PASS)]


def test_the_gate_fails_a_row_that_misses_a_threshold():
    row = _row(1, 150, 1)
    row.metrics["client_words_doubled"] = 3
    row.metrics["client_attempts_per_s"] = 12.5
    verdicts = {v.name: v for v in slo_gate(row, GATE.thresholds)}
    assert verdicts["slo.client_words_doubled"].status is Status.FAIL
    assert verdicts["slo.client_attempts_per_s"].status is Status.FAIL
    assert "not met: measured 12.5" in verdicts["slo.client_attempts_per_s"].message

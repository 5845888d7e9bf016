"""Stream lifecycle, session state, bad-input answers and the session-creation percentile."""

from histbuild import at, pipeline_names, scripted_history

from harness.checks import conformance
from harness.checks.verdict import Status
from harness.history import History
from harness.protocols.events import Ack, Closed, Error, Partial


def healthy_body(**changes):
    body = {
        "session_id": "s-1", "state": "completed",
        "events": pipeline_names(),
        "pipeline": {s: "ready" for s in ("refinement", "analytics", "tasks", "summary")},
        "results": {"refined_transcript": "x", "analytics": {}, "tasks": [], "summary": "y"},
    }
    body.update(changes)
    return body


# --- stream_lifecycle ------------------------------------------------------------------------
def test_healthy_stream_passes():
    v = conformance.stream_lifecycle(scripted_history())
    assert v.status is Status.PASS, v.message


def test_unacknowledged_audio_fails_naming_the_bytes():
    h = scripted_history(n_words=10)
    h.records = [r for r in h.records if not (r.kind == "event" and r.data["event"]["type"] == "ack")]
    h.add_event(Ack(received_offset=32000, durable_offset=0), t_ns=at(3000))
    v = conformance.stream_lifecycle(h)
    assert v.status is Status.FAIL
    assert "audio acknowledged only through byte 32000 of 96000 sent" in v.message


def test_missing_ready_and_partials_fail():
    h = scripted_history()
    h.records = [r for r in h.records
                 if not (r.kind == "event" and r.data["event"]["type"] in ("ready", "partial"))]
    v = conformance.stream_lifecycle(h)
    assert v.status is Status.FAIL
    assert "no ready message arrived" in v.message and "no partial with text arrived" in v.message


def test_wrong_close_and_errors_fail():
    h = scripted_history(close_code=1011)
    h.add_event(Error(code="internal", message="engine crashed"), t_ns=at(100))
    v = conformance.stream_lifecycle(h)
    assert v.status is Status.FAIL
    assert "closed 1011" in v.message and "internal: engine crashed" in v.message


def test_deepgram_stream_needs_no_ready_or_acks():
    h = scripted_history()
    h.records = [r for r in h.records if not (r.kind == "event" and r.data["event"]["type"] in ("ready", "ack"))]
    assert conformance.stream_lifecycle(h, ready=False, acks=False).status is Status.PASS
    v = conformance.stream_lifecycle(h)  # the same history where the protocol promises both
    assert v.status is Status.FAIL and "no ready message arrived" in v.message


def test_silence_expects_no_speech():
    h = History(session_id="s-2", meta={"protocol": "reference"})
    h.add_event(Closed(1000))
    assert conformance.stream_lifecycle(h, expect_speech=False).status is Status.FAIL  # no ready
    assert "no final with text arrived" in conformance.stream_lifecycle(h).message


# --- session_state ---------------------------------------------------------------------------
def test_completed_session_passes():
    assert conformance.session_state(healthy_body()).status is Status.PASS


def test_missing_event_is_named():
    v = conformance.session_state(healthy_body(events=pipeline_names()[:-1]))
    assert v.status is Status.FAIL
    assert "pipeline event dashboard_refresh never happened" in v.message


def test_skipped_pipeline_fails():
    v = conformance.session_state(healthy_body(events=["session_finalized"], pipeline={}, results={}))
    assert v.status is Status.FAIL
    assert "pipeline events refinement_started, refinement_ready" in v.message
    assert "step refinement is None, analytics is None" in v.message


def test_failed_state_fails():
    v = conformance.session_state(healthy_body(state="failed"))
    assert v.status is Status.FAIL and "state is 'failed'" in v.message


# --- error_answer / http_answer ----------------------------------------------------------------
def test_expected_error_passes_and_silence_fails():
    ok = conformance.error_answer("odd-length frame", [Error("bad_frame", "odd")], ["bad_frame"])
    assert ok.status is Status.PASS and ok.name == "bad_input.odd-length_frame"
    bad = conformance.error_answer("odd-length frame", [Partial(0, "x", 0, 1)], ["bad_frame"], who="session s-1")
    assert bad.status is Status.FAIL
    assert bad.message == "session s-1: odd-length frame: expected error bad_frame, got nothing (1 other message(s))"


def test_wrong_close_is_named():
    v = conformance.error_answer("wrong token", [Closed(1011, "boom")], expect_closes=[1008])
    assert v.status is Status.FAIL and "expected close 1008, got close 1011 'boom'" in v.message
    assert conformance.error_answer("wrong token", [Closed(1008)], expect_closes=[1008]).status is Status.PASS


def test_http_answer():
    assert conformance.http_answer("unknown session", 404, [404]).status is Status.PASS
    v = conformance.http_answer("wrong key", 200, [401])
    assert v.status is Status.FAIL and "expected HTTP 401, got HTTP 200" in v.message
    assert "no answer" in conformance.http_answer("wrong key", None, [401]).message


# --- create_percentile -------------------------------------------------------------------------
def creations(latencies):
    h = History(meta={"scenario": "slow create"})
    for i, ms in enumerate(latencies):
        h.add("http", t_ns=at(i * 10), method="POST", path="/v1/sessions", status=201, latency_ms=ms, error=None)
    return h


def test_fast_creation_passes():
    v = conformance.create_percentile(creations([30.0] * 10))
    assert v.status is Status.PASS and v.metrics["session_create_ms"] == [30.0] * 10


def test_one_in_five_slow_fails_p95():
    v = conformance.create_percentile(creations([30, 30, 30, 30, 2530, 30, 30, 30, 30, 2510]))
    assert v.status is Status.FAIL
    assert "p95 session creation 2530 ms over 10 sessions exceeds 2000 ms (2 slow" in v.message


def test_too_few_creations_is_unknown():
    assert conformance.create_percentile(creations([30.0]), min_samples=5).status is Status.UNKNOWN


# --- partial_coverage --------------------------------------------------------------------------
def test_partials_every_word_cover_the_speech():
    v = conformance.partial_coverage(scripted_history(n_words=15))
    assert v.status is Status.PASS, v.message
    assert v.evidence["largest_audio_gap_ms"] == 300


def test_partials_stopping_after_the_first_final_fail():
    # stream-gap: no partial in segment 1 (words 5-9) until its final at 3000 ms of audio
    v = conformance.partial_coverage(scripted_history(n_words=15, suppress_partials=True))
    assert v.status is Status.FAIL
    assert "no partial for 1500 ms of speech (limit 1000 ms), from audio 1500 ms to 3000 ms" in v.message


def test_the_tail_counts():
    h = scripted_history(n_words=10, suppress_partials=True)  # segment 1 final only at finalize
    h.meta["speech_end_ms"] = 2900
    h.records = [r for r in h.records if not (r.kind == "event" and r.data["event"]["type"] == "final"
                                              and r.data["event"]["segment_id"] == 1)]
    v = conformance.partial_coverage(h)
    assert v.status is Status.FAIL and "(the rest of the speech)" in v.message


def test_late_bunched_partials_still_cover_the_speech():
    h = scripted_history(n_words=15)
    late = max(r.t_ns for r in h.records) + 5_000 * 1_000_000
    for r in h.records:
        if r.kind == "event" and r.data["event"]["type"] in ("partial", "final"):
            r.t_ns = late  # a busy server: everything arrives at once, seconds late
    v = conformance.partial_coverage(h)
    assert v.status is Status.PASS and v.evidence["largest_wall_gap_ms"] == 0


def test_no_hypothesis_is_unknown():
    h = scripted_history(n_words=10)
    h.records = [r for r in h.records if not (r.kind == "event" and r.data["event"]["type"] in ("partial", "final"))]
    assert conformance.partial_coverage(h).status is Status.UNKNOWN

"""Latency checks on hand-made histories (times in ms from T0; see histbuild)."""

from histbuild import at, add_fault, scripted_history, sort_records

from harness.checks import latency
from harness.checks.verdict import Status
from harness.protocols.events import Final, Partial


def test_healthy_session_measures_every_latency():
    h = scripted_history()
    verdicts = {v.name: v for v in latency.all_checks(h)}
    assert all(v.status is Status.PASS for v in verdicts.values()), [v.message for v in verdicts.values()]
    assert verdicts["latency.session_create"].metrics["session_create_ms"] == [20.0]
    assert verdicts["latency.connect"].metrics["connect_ms"] == [5.0]
    # onset 0 ms goes out with chunk 0 at 50 ms; word 0 ends at byte 9600, chunk 2 at 250 ms, partial +20
    assert verdicts["latency.first_partial"].metrics["first_partial_ms"] == [220.0]
    # segment 0 ends at 1500 ms = byte 48000; byte 47999 goes out in chunk 14 at 1450 ms, final +40;
    # segment 1 ends with the audio (chunk 29 at 2950 ms) and comes with finalize at 3110 ms
    assert verdicts["latency.final"].metrics["final_latency_ms"] == [40.0, 160.0]
    assert verdicts["latency.finalize"].metrics["finalize_final_ms"] == [50.0]
    assert verdicts["latency.pipeline"].metrics["pipeline_ms"] == [90.0 + 100.0]


def test_limit_exceeded_fails_naming_the_segment():
    h = scripted_history(final_delay_ms=700)
    v = latency.final_latency(h, limit_ms=500)
    assert v.status is Status.FAIL
    assert "segment 0" in v.message and "700 ms" in v.message and "session s-1" in v.message


def test_too_few_samples_is_unknown():
    h = scripted_history(n_words=3)  # one segment, closed only at finalize
    v = latency.final_latency(h, min_samples=5)
    assert v.status is Status.UNKNOWN and "need 5" in v.message


def test_no_partial_after_onset_fails():
    h = scripted_history()
    h.records = [r for r in h.records if not (r.kind == "event" and r.data["event"]["type"] in ("partial", "final"))]
    v = latency.first_partial(h)
    assert v.status is Status.FAIL and "no partial" in v.message


def test_onset_unknown_without_meta():
    h = scripted_history()
    del h.meta["speech_onset_ms"]
    assert latency.first_partial(h).status is Status.UNKNOWN


def test_first_partial_counts_from_onset_not_from_start():
    h = scripted_history(speech_onset_ms=1000)  # byte 32000, sent in chunk 10 at 1050 ms
    v = latency.first_partial(h)
    # the first partial after 1050 ms: word 3 ends at 1200 ms, chunk 11 at 1150 ms, partial +20
    assert v.metrics["first_partial_ms"] == [120.0]


def test_final_latency_excludes_segments_waited_on_during_a_fault():
    h = scripted_history()
    add_fault(h, 1400, 1600)
    v = latency.final_latency(h)
    assert v.metrics["final_latency_ms"] == [160.0]
    assert v.evidence["excluded_during_faults"] == ["segment 0 (ends 1500 ms)"]
    assert latency.final_latency(h, include_faults=True).metrics["final_latency_ms"] == [40.0, 160.0]


def test_final_lost_on_close_fails_finalize_latency():
    h = scripted_history(n_words=7)  # segment 1 holds words 5-6, finalized only at finalize
    h.records = [r for r in h.records if not (r.kind == "event" and r.data["event"]["type"] == "final"
                                              and r.data["event"]["segment_id"] == 1)]
    v = latency.finalize_latency(h)
    assert v.status is Status.FAIL and "segment 1" in v.message and "lost on close" in v.message


def test_nothing_open_at_finalize_is_unknown():
    h = scripted_history(n_words=6, segment_words=3)
    h.records = [r for r in h.records if not (r.kind == "event" and r.data["event"]["type"] == "final"
                                              and r.data["event"]["segment_id"] == 1)]
    h.records = [r for r in h.records if not (r.kind == "event" and r.data["event"]["type"] == "partial"
                                              and r.data["event"]["segment_id"] == 1)]
    assert latency.finalize_latency(h).status is Status.UNKNOWN


def test_pipeline_latency_unknown_without_events():
    h = scripted_history(pipeline=[])
    assert latency.pipeline_latency(h).status is Status.UNKNOWN
    assert latency.pipeline_latency(scripted_history(finalize=False)).status is Status.UNKNOWN


def test_partial_cadence_passes_at_one_word_per_300_ms():
    v = latency.partial_cadence(scripted_history(n_words=15))
    assert v.status is Status.PASS
    assert max(v.metrics["partial_gap_ms"]) <= 300.0


def test_partial_cadence_fails_when_partials_stop_after_first_final():
    h = scripted_history(n_words=15, suppress_partials=True)  # the stream-gap defect's symptom
    v = latency.partial_cadence(h)
    assert v.status is Status.FAIL
    assert "1500 ms" in v.message and "final of segment 0" in v.message and "final of segment 1" in v.message
    assert v.evidence["audio_sent_during_gap"] > 0


def test_partial_cadence_ignores_a_gap_across_a_fault():
    h = scripted_history(n_words=15, suppress_partials=True)
    add_fault(h, 1400, 4000)
    v = latency.partial_cadence(h)
    assert v.status is not Status.FAIL


def test_partial_cadence_ignores_a_gap_across_a_reconnect():
    h = scripted_history(n_words=15, suppress_partials=True)
    h.add("connect", t_ns=at(2000), attempt=1, url="ws://x", last_segment_id=0)
    h.add("connect", t_ns=at(3500), attempt=2, url="ws://x", last_segment_id=1)
    sort_records(h)
    assert latency.partial_cadence(h).status is not Status.FAIL


def test_connect_attempts_without_latency_use_the_connect_record():
    h = scripted_history()
    for r in h.of_kind("connected"):
        del r.data["latency_ms"]
    assert latency.connect(h).metrics["connect_ms"] == [5.0]


def test_failed_session_creation_gives_no_sample():
    h = scripted_history()
    h.of_kind("http")[0].data["status"] = 503
    assert latency.session_creation(h).status is Status.UNKNOWN


def test_samples_report_replays_once():
    h = scripted_history()
    first = h.finals()[0][1]
    h.add_event(Final(first.segment_id, first.text, first.start_ms, first.end_ms, first.words), t_ns=at(5000))
    assert len(latency.final_latency_samples(h)) == 2
    assert isinstance(h.events("partial")[0][1], Partial)

"""Pipeline events, finalize equivalence, idempotency and the zero-audio session."""

import copy

from histbuild import at, pipeline_names, scripted_history, sort_records

from harness.checks import lifecycle
from harness.checks.verdict import Status
from harness.protocols.events import Closed, PipelineEvent


def test_protocol_order_lists_every_event():
    assert lifecycle.protocol_order() == pipeline_names()
    assert lifecycle.protocol_order({"tasks": "failed"})[6] == "tasks_failed"


def test_healthy_pipeline_passes():
    v = lifecycle.pipeline_events(scripted_history())
    assert v.status is Status.PASS, v.message


def test_missing_dashboard_refresh_fails():
    v = lifecycle.pipeline_events(scripted_history(pipeline=pipeline_names()[:-1]))
    assert v.status is Status.FAIL and "dashboard_refresh missing" in v.message


def test_doubled_events_fail():
    v = lifecycle.pipeline_events(scripted_history(pipeline=pipeline_names() + ["tasks_ready"]))
    assert v.status is Status.FAIL and "tasks_ready sent 2 times" in v.message


def test_out_of_order_fails_naming_the_pair():
    names = pipeline_names()
    names[3], names[2] = names[2], names[3]  # analytics_started before refinement_ready
    v = lifecycle.pipeline_events(scripted_history(pipeline=names))
    assert v.status is Status.FAIL and "analytics_started came before refinement_ready" in v.message


def test_failed_step_fails_unless_allowed():
    names = [n.replace("summary_ready", "summary_failed") for n in pipeline_names()]
    h = scripted_history(pipeline=names)
    assert lifecycle.pipeline_events(h).status is Status.FAIL
    assert lifecycle.pipeline_events(h, allow_failed=True).status is Status.PASS


def test_unexpected_event_fails():
    v = lifecycle.pipeline_events(scripted_history(pipeline=pipeline_names() + ["party_started"]))
    assert v.status is Status.FAIL and "unexpected event 'party_started'" in v.message


def test_close_must_be_1000_after_the_last_event():
    assert lifecycle.pipeline_events(scripted_history(close_code=1011)).status is Status.FAIL
    v = lifecycle.pipeline_events(scripted_history(close_code=None))
    assert v.status is Status.FAIL and "did not close" in v.message
    assert lifecycle.pipeline_events(scripted_history(close_code=None), expect_close=False).status is Status.PASS


def test_close_before_pipeline_then_nothing_fails():
    h = scripted_history(pipeline=[], close_code=None)
    h.add_event(Closed(1000), t_ns=at(3200))
    sort_records(h)
    v = lifecycle.pipeline_events(h)
    assert v.status is Status.FAIL and "session_finalized missing" in v.message


def test_never_finalized_is_unknown():
    assert lifecycle.pipeline_events(scripted_history(finalize=False)).status is Status.UNKNOWN


def body(session_id="a", events=None, pipeline=None, state="completed", tasks=None, refined="Send the patient home.",
         finals=None):
    return {
        "session_id": session_id,
        "state": state,
        "finals": finals if finals is not None else [{"segment_id": 0, "text": "send the patient home"}],
        "events": [{"name": n} for n in (pipeline_names() if events is None else events)],
        "pipeline": pipeline if pipeline is not None else {s: "ready" for s in lifecycle.PIPELINE_STEPS},
        "results": {
            "refined_transcript": {"text": refined} if refined is not None else None,
            "analytics": {"word_count": 4} if refined is not None else None,
            "tasks": {"items": tasks if tasks is not None else [{"text": "send the patient home", "owner": None}]}
            if refined is not None else None,
            "summary": {"text": refined} if refined is not None else None,
        },
    }


def test_http_and_stream_finalize_equivalent():
    assert lifecycle.finalize_equivalence(body("h"), body("s")).status is Status.PASS


def test_http_finalize_that_skips_the_pipeline_is_caught():
    skipped = body("h", events=["session_finalized"], pipeline={}, refined=None)
    v = lifecycle.finalize_equivalence(skipped, body("s"))
    assert v.status is Status.FAIL
    assert "session h has no refined_transcript" in v.message
    assert v.evidence["http"]["events"] == ["session_finalized"]


def test_equivalence_compares_refined_text_after_normalization():
    assert lifecycle.finalize_equivalence(body("h", refined="send the patient home"), body("s")).status is Status.PASS
    v = lifecycle.finalize_equivalence(body("h", refined="send the patient"), body("s"))
    assert v.status is Status.FAIL and "refined transcripts differ" in v.message
    assert lifecycle.finalize_equivalence(body("h", refined="x"), body("s"), compare_transcripts=False).status is Status.PASS


def test_idempotent_finalize_passes():
    h = scripted_history()
    for k in range(5):
        h.add("http", t_ns=at(3100 + k), method="POST", path="/v1/sessions/s-1/finalize", status=202, latency_ms=3.0)
    sort_records(h)
    v = lifecycle.idempotency(body("s-1"), h)
    assert v.status is Status.PASS and "5 finalize calls" in v.message


def test_pipeline_run_twice_is_caught_by_events_and_tasks():
    doubled = body("d", events=pipeline_names() * 2, tasks=[{"text": "call back"}, {"text": "call back"}])
    v = lifecycle.idempotency(doubled)
    assert v.status is Status.FAIL
    assert "session_finalized sent 2 times" in v.message


def test_doubled_tasks_alone_are_caught():
    v = lifecycle.idempotency(body("d", tasks=[{"text": "call back"}, {"text": "call back"}]))
    assert v.status is Status.FAIL and "tasks repeated" in v.message


def test_reference_body_sets_the_expected_task_count():
    twice = body("d", tasks=[{"text": "call back"}, {"text": "call back"}])
    assert lifecycle.idempotency(twice, reference_body=copy.deepcopy(twice)).status is Status.PASS
    assert lifecycle.idempotency(twice, reference_body=body("r")).status is Status.FAIL


def test_failed_finalize_call_is_caught():
    h = scripted_history()
    h.add("http", t_ns=at(3100), method="POST", path="/v1/sessions/s-1/finalize", status=500, latency_ms=3.0)
    v = lifecycle.idempotency(body("s-1"), h)
    assert v.status is Status.FAIL and "answered ['500']" in v.message


def test_doubled_stream_events_are_caught_on_the_history():
    h = scripted_history()
    h.add_event(PipelineEvent("dashboard_refresh"), t_ns=at(9000))
    v = lifecycle.idempotency(body("s-1"), h)
    assert v.status is Status.FAIL and "on the stream: dashboard_refresh sent 2 times" in v.message


def test_zero_audio_session_completes_with_every_step():
    empty = body("z", finals=[], refined="", tasks=[])
    h = scripted_history(n_words=0)
    assert lifecycle.zero_audio(empty, h).status is Status.PASS


def test_zero_audio_crash_is_caught():
    crashed = body("z", finals=[], refined="", tasks=[], state="failed",
                   pipeline={"refinement": "failed", "analytics": "ready", "tasks": "ready", "summary": "ready"},
                   events=[n.replace("refinement_ready", "refinement_failed") for n in pipeline_names()])
    v = lifecycle.zero_audio(crashed)
    assert v.status is Status.FAIL
    assert "state is 'failed'" in v.message and "step refinement is 'failed'" in v.message


def test_zero_audio_with_words_is_caught():
    v = lifecycle.zero_audio(body("z"))
    assert v.status is Status.FAIL and "1 final(s) with no audio" in v.message


def test_body_readers_accept_plain_forms():
    b = {"events": ["session_finalized"], "pipeline": {"tasks": {"status": "ready"}},
         "results": {"tasks": [{"text": "x"}], "refined_transcript": "Hi."}}
    assert lifecycle.body_events(b) == ["session_finalized"]
    assert lifecycle.body_pipeline(b) == {"tasks": "ready"}
    assert lifecycle.body_tasks(b) == [{"text": "x"}]
    assert lifecycle.body_refined_text(b) == "Hi."


def test_no_audio_stream_fails_on_words_or_an_error_and_allows_the_documented_answer():
    from harness.history import History
    from harness.protocols.events import Error, Final

    clean = History(session_id="s")
    clean.add_event(Final(0, "", 0, 0))  # an empty final is not a word
    clean.add_event(Closed(1000))
    assert lifecycle.no_audio_stream(clean).status is Status.PASS

    worded = History(session_id="s")
    worded.add_event(Final(0, "hello there", 0, 600))
    v = lifecycle.no_audio_stream(worded)
    assert v.status is Status.FAIL and "'hello there'" in v.message

    empty_commit = History(session_id="s")
    empty_commit.add_event(Error("input_audio_buffer_commit_empty", "buffer too small"))
    assert lifecycle.no_audio_stream(empty_commit).status is Status.FAIL
    v = lifecycle.no_audio_stream(empty_commit, frozenset({"input_audio_buffer_commit_empty"}))
    assert v.status is Status.PASS

"""The property suite's verdict (scenarios/property/property_verdict.py): what a run that passed,
failed, broke or ran out of time reports, from hand-made run records (no server)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scenarios" / "property"))

from hypothesis.errors import FlakyFailure  # noqa: E402
from property_verdict import stream_model_verdict  # noqa: E402
from stream_machine import Failure, MachineContext  # noqa: E402

from harness.checks.verdict import Status  # noqa: E402
from harness.history import History  # noqa: E402
from harness.protocols.base import StreamTarget  # noqa: E402

SYMPTOM = "doubled words: segment 1 (0-300 ms, 'a b c') transcribes the same audio as segment 0 (0-300 ms, 'a b c')"
STEPS = ("open_session(start='burst', sizes=[2, 2], finalize='stream')", "teardown()")


def ctx(examples: int = 12) -> MachineContext:
    c = MachineContext(target=StreamTarget("http://127.0.0.1:9", "key"), http=None)  # type: ignore[arg-type]
    c.examples = examples
    c.samples = {"session_success": [1] * examples}
    return c


def failed(c: MachineContext, assertion: bool = True) -> AssertionError:
    history = History(session_id="s-1")
    c.failure = Failure(history, SYMPTOM, STEPS, assertion)
    error = AssertionError(SYMPTOM)
    error.add_note("state = StreamMachine()")
    for step in ("state.open_session(start='burst', sizes=[2, 2], finalize='stream')",
                 "state.server_agrees_with_model()", "state.teardown()"):
        error.add_note(step)
    return error


def test_a_clean_run_passes_with_its_samples():
    v = stream_model_verdict(ctx(), None, 3.0)
    assert v.status is Status.PASS and v.message.startswith("12 random sessions")
    assert v.metrics["session_success"] == [1] * 12 and v.metrics["examples"] == 12


def test_too_few_sessions_before_the_budget_is_unknown():
    c = ctx(examples=2)
    c.out_of_time = True
    v = stream_model_verdict(c, None, 80.0)
    assert v.status is Status.UNKNOWN and "only 2 session(s) ran" in v.message


def test_a_failure_names_the_symptom_and_the_shrunk_steps():
    c = ctx()
    v = stream_model_verdict(c, failed(c), 9.0)
    assert v.status is Status.FAIL
    assert v.message == (f"{SYMPTOM} -- shrunk counterexample: open_session(start='burst', sizes=[2, 2], "
                         "finalize='stream'); teardown()")
    assert v.evidence["counterexample"][0] == "state = StreamMachine()"
    assert v.evidence["session_id"] == "s-1"


def test_a_race_that_does_not_replay_keeps_the_failing_examples_steps():
    c = ctx()
    failed(c)
    flaky = FlakyFailure("Hypothesis found failures that did not reproduce", [AssertionError(SYMPTOM)])
    v = stream_model_verdict(c, flaky, 9.0)
    assert v.status is Status.FAIL and "timing-dependent, did not fail again when replayed" in v.message
    assert v.evidence["counterexample"] == ["state = StreamMachine()", *(f"state.{s}" for s in STEPS)]


def test_shrinking_cut_by_the_budget_says_so():
    c = ctx()
    error = failed(c)
    c.out_of_time = True
    v = stream_model_verdict(c, error, 80.0)
    assert v.status is Status.FAIL and "when shrinking stopped at the 75 s budget" in v.message


def test_an_exception_that_is_no_symptom_is_unknown():
    c = ctx()
    c.failure = Failure(History(), "SessionCreateError: session creation refused: HTTP 400: engine", STEPS, False)
    v = stream_model_verdict(c, RuntimeError("boom"), 1.0)
    assert v.status is Status.UNKNOWN and "the run broke before a verdict: SessionCreateError" in v.message


def test_each_session_gives_its_slo_samples():
    from property_model import StreamModel

    from harness.protocols.events import Final, PipelineEvent, Word

    h = History(session_id="s-2")
    h.add("http", method="POST", path="/v1/sessions", status=201, latency_ms=4.0, error=None)
    h.add("connect", attempt=0, url="ws://127.0.0.1:9/v1/stream", last_segment_id=None)
    h.add("connected", attempt=0, latency_ms=2.5)
    h.add("audio_sent", offset=0, length=3200)
    h.add_event(Final(0, "alpha", 0, 100, (Word("alpha", 0, 100),)))
    h.add("control_sent", message="finalize", t_ns=h.t0_ns + 1_000_000)
    h.add_event(PipelineEvent("dashboard_refresh"), t_ns=h.t0_ns + 21_000_000)
    m = StreamModel(("alpha",), word_ms=100, taken=3200)
    c = ctx(examples=0)
    c.samples = {}
    c.record_example(h, m, ok=True, finished=True)
    c.record_example(History(), m, ok=False, finished=False)
    assert c.samples == {"session_create_ms": [4.0], "connect_ms": [2.5], "session_success": [1, 0],
                         "lost_words": [0], "duplicated_words": [0], "lost_segments": [0], "pipeline_ms": [20.0]}

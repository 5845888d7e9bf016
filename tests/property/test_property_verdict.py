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

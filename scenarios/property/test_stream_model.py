"""Random sequences of stream steps on one scripted session each, checked against a model.

Hypothesis generates sequences of new audio, duplicates, gaps, abrupt disconnects with resume,
keepalives and finalize (``stream_machine.StreamMachine``), each on a fresh session, and shrinks
a failing one to its shortest form. The scenario's verdict carries that counterexample's steps and
the symptom; its history is saved with the scenario.

Catches ``duplicate-engine-race`` (a burst of first frames opens two engines: the same audio is
transcribed twice) and ``no-resume`` (a resent frame is taken again: doubled words).
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis.errors import Flaky
from hypothesis.stateful import run_state_machine_as_test
from stream_machine import MachineContext, StreamMachine

from harness.checks.verdict import Status, Verdict
from harness.protocols.base import StreamTarget

# Small in CI (the suite takes well under a minute on two cores), larger every night.
PROFILES: dict[str, dict[str, Any]] = {
    "ci": {"max_examples": 30, "stateful_step_count": 10, "derandomize": True},
    "nightly": {"max_examples": 150, "stateful_step_count": 25, "derandomize": False},
}


def hypothesis_settings(profile: str) -> settings:
    return settings(
        **PROFILES[profile],
        deadline=None,  # steps wait on the network
        database=None,  # nothing written into the checkout; a failure is reported in full instead
        print_blob=False,
        phases=(Phase.explicit, Phase.generate, Phase.shrink),
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


@pytest.mark.timeout(900)
@pytest.mark.catches("duplicate-engine-race", "no-resume")
def test_stream_model(scenario, target, harness_options):
    if target.protocol != "reference":
        pytest.skip(f"the property suite speaks the reference protocol (offsets, resume, scripted engine); "
                    f"the target speaks {target.protocol!r}")
    scenario.params.update(PROFILES[harness_options.profile])
    with httpx.Client(trust_env=False) as http:
        ctx = MachineContext(target=StreamTarget(target.http_url, target.api_key), http=http)
        started = time.monotonic()
        try:
            run_state_machine_as_test(lambda: StreamMachine(ctx), settings=hypothesis_settings(harness_options.profile))
            error: BaseException | None = None
        except Exception as exc:  # noqa: BLE001 - every failure becomes the verdict, with its evidence
            error = exc
    scenario.check(stream_model_verdict(ctx, error, time.monotonic() - started))
    if error is not None and ctx.failure is not None:
        scenario.add_history(ctx.failure.history)
    elif ctx.last_history is not None:
        scenario.add_history(ctx.last_history)
    scenario.verify()


def stream_model_verdict(ctx: MachineContext, error: BaseException | None, duration_s: float) -> Verdict:
    metrics: dict[str, Any] = {**ctx.samples, "examples": ctx.examples, "steps": sum(ctx.steps.values()),
                               "bytes_sent": ctx.bytes_sent, "duration_s": round(duration_s, 1)}
    evidence: dict[str, Any] = {"step_counts": dict(sorted(ctx.steps.items()))}
    name = "property.stream_model"
    if error is None:
        return Verdict(name, Status.PASS,
                       f"{ctx.examples} random sessions ({metrics['steps']} steps): every byte taken once, gaps "
                       "refused, resumes and replays exact, pipeline once in order", metrics, evidence)
    assertion = first_assertion(error)
    symptom = ctx.failure.symptom if ctx.failure is not None else str(assertion or error)
    steps = counterexample_steps(error)
    if not steps and ctx.failure is not None:  # not replayable (a race): the last failing example's steps
        steps = ["state = StreamMachine()", *(f"state.{c}" for c in ctx.failure.steps)]
    evidence.update(symptom=symptom, counterexample=steps)
    if ctx.failure is not None:
        evidence["session_id"] = ctx.failure.history.session_id
    if assertion is None and ctx.failure is None:
        return Verdict(name, Status.UNKNOWN, f"the run broke before a verdict: {type(error).__name__}: {error}",
                       metrics, evidence)
    shown = "; ".join(s.removeprefix("state.") for s in steps if not s.startswith(("state = ", "state.server_agrees")))
    if isinstance(error, Flaky):  # a race: the smallest failing example did not fail again when replayed
        evidence["replayable"] = False
        return Verdict(name, Status.FAIL, f"{symptom} -- smallest failing example (timing-dependent, did not fail "
                       f"again when replayed): {shown}", metrics, evidence)
    return Verdict(name, Status.FAIL, f"{symptom} -- shrunk counterexample: {shown}", metrics, evidence)


def first_assertion(error: BaseException) -> AssertionError | None:
    """The AssertionError in ``error`` (hypothesis may wrap failures in an exception group)."""
    if isinstance(error, AssertionError):
        return error
    for inner in getattr(error, "exceptions", ()) or ():
        found = first_assertion(inner)
        if found is not None:
            return found
    return None


def counterexample_steps(error: BaseException) -> list[str]:
    """The steps hypothesis attaches to the failure it raises (``__notes__``), as code lines."""
    for exc in (error, *(getattr(error, "exceptions", ()) or ())):
        notes = [n for n in getattr(exc, "__notes__", []) if n.startswith("state")]
        if notes:
            return notes
    return []


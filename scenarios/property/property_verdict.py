"""The property suite's verdict: pass, fail with the symptom and the (shrunk) counterexample's
steps, or unknown when the target could not be driven or too few sessions ran."""

from __future__ import annotations

from typing import Any

from hypothesis.errors import Flaky
from stream_machine import MachineContext

from harness.checks.verdict import Status, Verdict

NAME = "property.stream_model"
MIN_EXAMPLES = 5  # fewer sessions than this before the budget ran out judge nothing


def stream_model_verdict(ctx: MachineContext, error: BaseException | None, duration_s: float) -> Verdict:
    metrics: dict[str, Any] = {**ctx.samples, "examples": ctx.examples, "steps": sum(ctx.steps.values()),
                               "bytes_sent": ctx.bytes_sent, "duration_s": round(duration_s, 1)}
    evidence: dict[str, Any] = {"step_counts": dict(sorted(ctx.steps.items()))}
    name = NAME
    cut = f" (stopped at the {ctx.budget_s:g} s budget)" if ctx.out_of_time else ""
    if error is None and ctx.failure is None:
        if ctx.examples < MIN_EXAMPLES:
            return Verdict(name, Status.UNKNOWN, f"only {ctx.examples} session(s) ran before the {ctx.budget_s:g} s "
                           f"budget ran out; at least {MIN_EXAMPLES} are needed to judge", metrics, evidence)
        return Verdict(name, Status.PASS,
                       f"{ctx.examples} random sessions ({metrics['steps']} steps){cut}: every byte taken once, gaps "
                       "refused, resumes and replays exact, pipeline once in order", metrics, evidence)
    assertion = first_assertion(error) if error is not None else None
    symptom = ctx.failure.symptom if ctx.failure is not None else str(assertion or error)
    steps = counterexample_steps(error) if error is not None else []
    if not steps and ctx.failure is not None:  # not replayable (a race): the last failing example's steps
        steps = ["state = StreamMachine()", *(f"state.{c}" for c in ctx.failure.steps)]
    evidence.update(symptom=symptom, counterexample=steps)
    if ctx.failure is not None:
        evidence["session_id"] = ctx.failure.history.session_id
    broke = not ctx.failure.assertion if ctx.failure is not None else assertion is None
    if broke:  # not a symptom the model named: the target could not be driven (refused, crashed, ...)
        why = ctx.failure.symptom if ctx.failure is not None else f"{type(error).__name__}: {error}"
        return Verdict(name, Status.UNKNOWN, f"the run broke before a verdict: {why}", metrics, evidence)
    shown = "; ".join(s.removeprefix("state.") for s in steps if not s.startswith(("state = ", "state.server_agrees")))
    if ctx.out_of_time:  # the examples past the budget did nothing, hypothesis' replay among them
        evidence["replayable"] = None
        return Verdict(name, Status.FAIL, f"{symptom} -- smallest failing example when shrinking stopped at the "
                       f"{ctx.budget_s:g} s budget: {shown}", metrics, evidence)
    if isinstance(error, Flaky) or error is None:  # a race: the smallest failing example did not fail again
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


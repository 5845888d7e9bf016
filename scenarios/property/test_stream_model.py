"""Random sequences of stream steps on one scripted session each, checked against a model.

Hypothesis generates sequences of new audio, duplicates, gaps, abrupt disconnects with resume,
keepalives and finalize (``stream_machine.StreamMachine``), each on a fresh session, and shrinks
a failing one to its shortest form. The scenario's verdict carries that counterexample's steps and
the symptom; its history is saved with the scenario.

Catches ``duplicate-engine-race`` (a burst of first frames opens two engines: the same audio is
transcribed twice) and ``no-resume`` (a resent frame is taken again: doubled words); on the way it
also catches the finalize defects its end checks see (events missing, doubled or failed, the last
final or the stream's close never sent, early audio dropped).
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import run_state_machine_as_test
from property_verdict import stream_model_verdict
from stream_machine import MachineContext, StreamMachine

from harness.protocols.base import StreamTarget

# Small in CI (about 20 s against a healthy server on two cores), larger every night. The budget
# bounds the run, shrinking included, whatever the backend does (a hang costs a timeout per example).
PROFILES: dict[str, dict[str, Any]] = {
    "ci": {"max_examples": 30, "stateful_step_count": 10, "derandomize": True},
    "nightly": {"max_examples": 150, "stateful_step_count": 25, "derandomize": False},
}
BUDGET_S = {"ci": 75.0, "nightly": 600.0}


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
@pytest.mark.needs("session_api", "v1_frames", "offsets", "replay", "segment_ids", "scripted_engine", "http_finalize",
                   "pipeline_events", "delete")
@pytest.mark.catches("duplicate-engine-race", "no-resume", "final-lost-on-close", "finalize-not-idempotent",
                     "early-audio-dropped", "pipeline-event-missing", "zero-segment-crash",
                     "finalize-http-skips-pipeline")
def test_stream_model(scenario, target, harness_options):
    profile = harness_options.profile
    scenario.params.update(PROFILES[profile], budget_s=BUDGET_S[profile])
    with httpx.Client(trust_env=False) as http:
        ctx = MachineContext(target=StreamTarget(target.http_url, target.api_key), http=http,
                             budget_s=BUDGET_S[profile])
        started = time.monotonic()
        try:
            run_state_machine_as_test(lambda: StreamMachine(ctx), settings=hypothesis_settings(profile))
            error: BaseException | None = None
        except Exception as exc:  # noqa: BLE001 - every failure becomes the verdict, with its evidence
            error = exc
    scenario.check(stream_model_verdict(ctx, error, time.monotonic() - started))
    if error is not None and ctx.failure is not None:
        scenario.add_history(ctx.failure.history)
    elif ctx.last_history is not None:
        scenario.add_history(ctx.last_history)
    scenario.verify()

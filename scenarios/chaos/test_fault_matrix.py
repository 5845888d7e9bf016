"""The fault matrix: one scenario per fault, each a session streaming a fixture through the fault.

Where the target resumes (offsets, replay): the session completes; every word of the clean
baseline is there exactly once (exact with the scripted engine); finals in order with no holes;
replays identical; every audio gap resent; the pipeline ran exactly once (stream events and the
server's record); recovery time (fault end -> next ack) and added latency are measured.

Where it cannot (Deepgram and the other vendor protocols): the client reconnects as a new session
after a fault; words outside the fault's window must match a clean baseline run of the same audio
on the same target, the words lost inside it are counted, the interrupted session must be closed
(read back where the target can show it), the backend must serve the next session, and recovery
time (fault end -> next result) and added latency are measured. The cases and their nemeses are in
harness/faults/matrix.py (a schedule of faults per case), the runner in harness/faults/matrix_runner.py
and the checks in harness/checks/chaos.py; all selected cases run side by side, each on its own proxy
or server.
"""

from __future__ import annotations

import pytest

from harness.checks.chaos import case_verdicts
from harness.faults import matrix
from harness.faults.matrix_runner import MatrixRunner


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "case" in metafunc.fixturenames:
        profile = metafunc.config.getoption("--profile")
        capabilities = metafunc.config._harness_options.capabilities_for()  # type: ignore[attr-defined]
        metafunc.parametrize("case", [
            pytest.param(c, id=c.id, marks=[pytest.mark.needs(*matrix.case_needs(c, capabilities))]
                         + ([pytest.mark.catches(*c.catches)] if c.catches else []))
            for c in matrix.cases(profile)
        ])


def test_fault(case: matrix.FaultCase, chaos_matrix: MatrixRunner, scenario) -> None:
    scenario.params.update(fault=case.fault, fault_params=case.params, layer=case.layer, engine=case.engine,
                           fixture_id=case.fixture_id, seed=case.seed)
    try:
        run = chaos_matrix.result(case)
    except matrix.CaseSkipped as exc:
        pytest.skip(str(exc))
    run.history.meta.update({"scenario": scenario.name, "suite": scenario.suite, **scenario.params})
    scenario.add_history(run.history)
    scenario.params["duration_s"] = round(run.duration_s, 1)
    if run.error:
        raise RuntimeError(run.error)
    for verdict in case_verdicts(run):
        scenario.check(verdict)
    scenario.verify()

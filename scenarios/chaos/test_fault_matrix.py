"""The fault matrix: one scenario per fault, each a session streaming a fixture through the fault.

Checked for every fault: the session completes; every word of the clean baseline is there exactly
once (exact with the scripted engine); finals in order with no holes; replays identical; every
audio gap resent; the pipeline ran exactly once (stream events and the server's record); recovery
time (fault end -> next ack) and added latency are measured. The cases and their nemeses are in
harness/faults/matrix.py (a schedule of faults per case), the runner in harness/faults/matrix_runner.py
and the checks in harness/checks/chaos.py; all selected cases run side by side, each on its own proxy
or server.
"""

from __future__ import annotations

import pytest

from harness.checks.chaos import case_verdicts
from harness.faults import matrix
from harness.faults.matrix_runner import MatrixRunner


# What every case needs: the matrix judges resume (offsets, replay of finals by segment id) and
# the pipeline after it.
MATRIX_NEEDS = ("session_api", "offsets", "replay", "segment_ids", "pipeline_events")


def case_needs(case: matrix.FaultCase) -> tuple[str, ...]:
    """The capabilities one case needs of the target (left out at collection otherwise)."""
    needs = list(MATRIX_NEEDS)
    if case.engine == "scripted":
        needs.append("scripted_engine")
    if case.own_server or case.layer == "process":  # a server the harness starts, kills or configures
        needs.append("embedded_server")
    return tuple(needs)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "case" in metafunc.fixturenames:
        profile = metafunc.config.getoption("--profile")
        metafunc.parametrize("case", [
            pytest.param(c, id=c.id, marks=[pytest.mark.needs(*case_needs(c))]
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

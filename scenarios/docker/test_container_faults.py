"""The chaos matrix's process faults (kill -9 and restart, freeze, SIGTERM) against the reference
server in a container, each through the docker engine, plus the docker nemesis's own faults: a
crash restarted by the restart policy, the network pulled for 2 s, CPU and memory squeezed while
streaming. Each case streams on a container of its own; the checks are the chaos matrix's
(completion, every word exactly once, finals in order, pipeline once, recovery time)."""

from __future__ import annotations

import pytest

from harness.checks.chaos import case_verdicts
from harness.containers import matrix as dmatrix
from harness.faults import matrix


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "case" in metafunc.fixturenames:
        profile = metafunc.config.getoption("--profile")
        metafunc.parametrize("case", [
            pytest.param(c, id=c.id, marks=[pytest.mark.catches(*c.catches)] if c.catches else [])
            for c in dmatrix.cases(profile)
        ])


def test_container_fault(case: matrix.FaultCase, docker_matrix: dmatrix.DockerMatrixRunner, scenario) -> None:
    scenario.params.update(fault=case.fault, fault_params=case.params, layer=case.layer, engine=case.engine,
                           fixture_id=case.fixture_id, seed=case.seed, backend=f"container of {docker_matrix.image}")
    try:
        run = docker_matrix.result(case)
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

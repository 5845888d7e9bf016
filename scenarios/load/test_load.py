"""A short steady load: every session succeeds with every word exactly once, the exact latency
percentiles hold the load SLOs, and the generator kept real time (pacing error p99).

Catches ``slow-session-create``: one creation in five taking 2.5 s puts the session-creation p95
over its 2 s SLO once a few dozen sessions have been created.
"""

from __future__ import annotations

import pytest
from conftest import slo_verdicts


@pytest.mark.catches("slow-session-create")
def test_short_load_holds_slos(scenario, load_job):
    outcome = load_job(users=8, duration_s=20)
    for verdict in outcome.verdicts + slo_verdicts(outcome):
        scenario.check(verdict)
    scenario.verify()

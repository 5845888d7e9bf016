"""The close-code table of PROTOCOL.md and the backoff, as pure functions."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.drivers.policy import backoff_delay, close_decision


def decide(code: int, work_remains: bool = True, reconnects: int = 0, failures: int = 0):
    return close_decision(code, work_remains=work_remains, reconnects=reconnects, max_reconnects=3, failures=failures,
                          base_s=0.1, cap_s=2.0, jitter=0.0, capacity_retry_s=1.5, rng=random.Random(0))


@pytest.mark.parametrize("code", [1000, 1008, 1009, 4404, 4409, 4410])
def test_codes_that_stop(code: int) -> None:
    d = decide(code)
    assert d.action == "stop" and str(code) in d.reason


@pytest.mark.parametrize("code", [1001, 1006, 1011])
def test_codes_that_resume_with_exponential_backoff(code: int) -> None:
    assert [decide(code, failures=n).delay_s for n in range(6)] == [0.1, 0.2, 0.4, 0.8, 1.6, 2.0]
    assert decide(code).action == "reconnect"


def test_capacity_retries_after_its_own_delay() -> None:
    d = decide(1013, failures=5)
    assert (d.action, d.delay_s) == ("reconnect", 1.5)


def test_idle_timeout_reconnects_only_with_work_left() -> None:
    assert decide(4408, work_remains=True).action == "reconnect"
    assert decide(4408, work_remains=False).action == "stop"


def test_reconnects_are_bounded() -> None:
    d = decide(1006, reconnects=3)
    assert d.action == "stop" and "gave up after 3" in d.reason


def test_unexplained_codes_stop_and_say_so() -> None:
    d = decide(4000)
    assert d.action == "stop" and "not a code the protocol retries" in d.reason


@given(st.integers(0, 100), st.floats(0.001, 5), st.floats(0.01, 60), st.floats(0, 1), st.integers(0, 2**32))
def test_backoff_stays_within_its_bounds(attempt: int, base: float, cap: float, jitter: float, seed: int) -> None:
    delay = backoff_delay(attempt, base, cap, jitter, random.Random(seed))
    ceiling = min(cap, base * 2 ** min(attempt, 30))
    assert ceiling * (1 - jitter) - 1e-9 <= delay <= ceiling + 1e-9

"""A check that raises is one unknown verdict naming it; the checks after it still run."""

from __future__ import annotations

import functools

from histbuild import scripted_history

from harness.checks import integrity
from harness.checks.verdict import Status, Verdict, check_name, safe_check


def broken(history) -> Verdict:
    raise KeyError("segment_id")


def test_a_raising_check_is_one_unknown_verdict_naming_it() -> None:
    v = safe_check(broken, scripted_history())
    assert v.status is Status.UNKNOWN
    assert v.name == "test_safe_check.broken"
    assert v.message == "the check test_safe_check.broken raised KeyError: 'segment_id'"
    assert v.evidence["at"].endswith("in broken")


def test_a_check_that_returns_no_verdict_is_unknown() -> None:
    v = safe_check(lambda h: None, scripted_history())
    assert v.status is Status.UNKNOWN and "not a Verdict" in v.message


def test_a_passing_check_is_returned_as_is() -> None:
    h = scripted_history()
    assert safe_check(integrity.segments, h) == integrity.segments(h)
    assert check_name(functools.partial(integrity.segments)) == "integrity.segments"


def test_all_checks_go_on_past_a_check_that_raises(monkeypatch) -> None:
    monkeypatch.setattr(integrity, "replays", broken)
    verdicts = integrity.all_checks(scripted_history())
    statuses = {v.name: v.status for v in verdicts}
    assert statuses.pop("test_safe_check.broken") is Status.UNKNOWN
    assert len(statuses) == 6 and set(statuses.values()) == {Status.PASS}, statuses

"""Checks: pure functions of a history that return a Verdict."""

from harness.checks.verdict import Status, Verdict, combine

__all__ = ["Status", "Verdict", "combine"]

"""The planted defects of DEFECTS.md: their names, and the set a server runs with.

Server-side defects are implemented where the real bug would live (see each ``DefectSet`` use);
the browser ones belong to the /live page, which reads them from ``GET /live/config.json``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

SERVER_DEFECTS: tuple[str, ...] = (
    "finalize-http-skips-pipeline",
    "finalize-not-idempotent",
    "zero-segment-crash",
    "pipeline-event-missing",
    "slow-session-create",
    "health-lies",
    "duplicate-engine-race",
    "stream-gap",
    "early-audio-dropped",
    "no-stall-detection",
    "no-resume",
    "final-lost-on-close",
    "no-heartbeat",
    "unbounded-transcript",
    "idle-never",
    "keepalive-ignored",
)
BROWSER_DEFECTS: tuple[str, ...] = ("client-no-reconnect", "phi-in-localstorage", "console-error")
KNOWN_DEFECTS: tuple[str, ...] = SERVER_DEFECTS + BROWSER_DEFECTS


class UnknownDefect(ValueError):
    """A defect name that DEFECTS.md does not define."""


@dataclass(frozen=True)
class DefectSet:
    names: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, names: Iterable[str]) -> DefectSet:
        names = list(names)
        unknown = [n for n in names if n not in KNOWN_DEFECTS]
        if unknown:
            raise UnknownDefect(
                f"unknown defect {', '.join(repr(n) for n in unknown)}; known defects: {', '.join(KNOWN_DEFECTS)}"
            )
        return cls(frozenset(names))

    def __contains__(self, name: object) -> bool:
        if name not in KNOWN_DEFECTS:  # a typo in the server's own code must not silently read False
            raise KeyError(f"not a defect name: {name!r}")
        return name in self.names

    def sorted(self) -> list[str]:
        return sorted(self.names)

"""A run directory read once for rendering: results by kind, histories on demand, SLO results."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from harness.checks.verdict import Status, Verdict, combine
from harness.history import FaultWindow, History
from harness.results import RunDir, ScenarioResult

MAX_HISTORIES = 3000  # the charts do not need more; a soak run may have many more sessions


@dataclass
class Item:
    """One thing the gate judges: a scenario, or another record that carries verdicts (e.g. load)."""

    suite: str
    name: str
    status: Status
    verdicts: list[Verdict]
    error: str | None = None
    duration_s: float = 0.0
    params: dict[str, Any] = field(default_factory=dict)
    result: ScenarioResult | None = None

    @property
    def key(self) -> str:
        return f"{self.suite}/{self.name}"

    def messages(self) -> list[str]:
        """What a reader needs for a non-passing item: the failing and unknown verdicts' messages."""
        out = [f"{v.status.value.upper()} {v.name}: {v.message}" for v in self.verdicts if v.status is not Status.PASS]
        if self.error:
            out.append(f"HARNESS ERROR: {self.error}")
        if not out and self.status is not Status.PASS:
            out.append("no verdict was recorded" if not self.verdicts else f"status {self.status.value}")
        return out


class RunData:
    """Everything the report shows, read from ``results.jsonl``, ``run.json`` and ``histories/``."""

    def __init__(self, path: Path | str):
        self.run = RunDir(path)
        self.path = self.run.path
        self.info: dict[str, Any] = self.run.read_run_info()
        self.records: list[dict[str, Any]] = list(self.run.records())
        self._histories: dict[str, History | None] = {}

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [r for r in self.records if r.get("record") == kind]

    @cached_property
    def scenarios(self) -> list[ScenarioResult]:
        return [ScenarioResult.from_dict(r) for r in self.of_kind("scenario")]

    @cached_property
    def items(self) -> list[Item]:
        items = [
            Item(s.suite, s.scenario, s.final_status(), s.verdicts, s.error, s.duration_s, s.params, s)
            for s in self.scenarios
        ]
        for rec in self.records:
            kind = rec.get("record")
            if kind == "scenario" or not rec.get("verdicts"):
                continue
            verdicts = [Verdict.from_dict(v) for v in rec["verdicts"]]
            status = Status(rec["status"]) if rec.get("status") in {s.value for s in Status} else combine(verdicts)
            items.append(Item(str(kind), str(rec.get("name") or rec.get("scenario") or kind), status, verdicts,
                              rec.get("error"), float(rec.get("duration_s") or 0.0), rec.get("params") or {}))
        return items

    def history(self, rel: str) -> History | None:
        """A history by its path relative to the run; None (remembered) when missing or unreadable."""
        if rel not in self._histories:
            try:
                self._histories[rel] = self.run.load_history(rel)
            except (OSError, ValueError, KeyError, TypeError):
                self._histories[rel] = None
        return self._histories[rel]

    @cached_property
    def unreadable_histories(self) -> list[str]:
        self.histories()
        return [rel for rel, h in self._histories.items() if h is None]

    def histories(self) -> list[tuple[ScenarioResult, History]]:
        """(scenario, history) for every history the scenarios name, up to ``MAX_HISTORIES``."""
        out = []
        for s in self.scenarios:
            for rel in s.histories:
                if len(out) >= MAX_HISTORIES:
                    return out
                h = self.history(rel)
                if h is not None:
                    out.append((s, h))
        return out

    def fault_windows(self) -> list[FaultWindow]:
        """Every fault window of the run (scenario-level and per history), each once."""
        seen, out = set(), []
        windows = [w for s in self.scenarios for w in s.faults] + [w for _, h in self.histories() for w in h.faults]
        for w in windows:
            key = (w.kind, w.target, w.start_ns, w.end_ns)
            if key not in seen:
                seen.add(key)
                out.append(w)
        return sorted(out, key=lambda w: w.start_ns)

    def artifact(self, rel: str) -> Path | None:
        """An artifact's absolute path if it exists inside the run directory."""
        path = (self.path / rel).resolve()
        try:
            path.relative_to(self.path.resolve())
        except ValueError:
            return None
        return path if path.is_file() else None

    def summary_json(self) -> dict[str, Any] | None:
        path = self.path / "summary.json"
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None

"""The run directory: where every suite's results land, and what reports are rendered from.

Layout of ``reports/<run-id>/``::

    results.jsonl      one JSON record per line (see ``ScenarioResult`` and ``append_record``)
    run.json           the run's parameters and environment (target, profile, versions, commit)
    histories/         one JSON history per session (``History.to_json``)
    artifacts/         screenshots, traces, Locust's HTML, benchmark JSON …
    summary.json, junit.xml, report.html   rendered by ``harness.report``

Records carry a ``record`` tag. ``scenario`` records are ``ScenarioResult``; other suites add
their own tags (``load``, ``benchmark``, ``selftest``, ``soak``) through ``append_record``.
Appends take a file lock, so several processes (Locust workers, pytest) can write one run.
"""

from __future__ import annotations

import datetime as _dt
import fcntl
import json
import os
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness.checks.verdict import Status, Verdict, combine
from harness.history import FaultWindow, History

DEFAULT_REPORTS_DIR = Path("reports")


@dataclass
class ScenarioResult:
    """One scenario's outcome: its verdicts, the sessions it ran, the faults it injected."""

    suite: str
    scenario: str
    verdicts: list[Verdict] = field(default_factory=list)
    sessions: list[str] = field(default_factory=list)
    histories: list[str] = field(default_factory=list)  # paths relative to the run directory
    faults: list[FaultWindow] = field(default_factory=list)
    artifacts: dict[str, str] = field(default_factory=dict)  # label -> relative path
    params: dict[str, Any] = field(default_factory=dict)  # protocol, fixture, defect, seed …
    duration_s: float = 0.0
    started_at: str = ""  # wall clock, ISO 8601, display only
    error: str | None = None  # a harness error (not a backend failure): makes the status unknown
    status: Status | None = None  # None: derived from the verdicts

    def final_status(self) -> Status:
        if self.status is not None:
            return self.status
        if self.error:
            return Status.UNKNOWN
        return combine(self.verdicts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "record": "scenario",
            "suite": self.suite,
            "scenario": self.scenario,
            "status": self.final_status().value,
            "verdicts": [v.to_dict() for v in self.verdicts],
            "sessions": self.sessions,
            "histories": self.histories,
            "faults": [asdict(w) for w in self.faults],
            "artifacts": self.artifacts,
            "params": self.params,
            "duration_s": self.duration_s,
            "started_at": self.started_at,
            "error": self.error,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScenarioResult:
        return cls(
            suite=data["suite"],
            scenario=data["scenario"],
            verdicts=[Verdict.from_dict(v) for v in data.get("verdicts", [])],
            sessions=list(data.get("sessions", [])),
            histories=list(data.get("histories", [])),
            faults=[FaultWindow(**w) for w in data.get("faults", [])],
            artifacts=dict(data.get("artifacts", {})),
            params=dict(data.get("params", {})),
            duration_s=data.get("duration_s", 0.0),
            started_at=data.get("started_at", ""),
            error=data.get("error"),
            status=Status(data["status"]) if data.get("status") else None,
        )


def new_run_id() -> str:
    return "run-" + _dt.datetime.now().strftime("%Y%m%d-%H%M%S-%f")[:-3]


_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(text: str) -> str:
    """A file-system-safe version of a scenario or session name."""
    return _SAFE.sub("_", text).strip("_")[:120] or "unnamed"


class RunDir:
    """A run directory on disk. Create with ``RunDir.create``; open an existing one with ``RunDir(path)``."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        if not self.path.is_dir():
            raise FileNotFoundError(f"run directory {self.path} does not exist")

    @classmethod
    def create(cls, out: Path | str | None = None, run_id: str | None = None) -> RunDir:
        """Make ``out`` (or ``reports/<run-id>``) with its subfolders and point ``reports/latest`` at it."""
        path = Path(out) if out else DEFAULT_REPORTS_DIR / (run_id or new_run_id())
        (path / "histories").mkdir(parents=True, exist_ok=True)
        (path / "artifacts").mkdir(parents=True, exist_ok=True)
        (path / "results.jsonl").touch()
        run = cls(path)
        run.point_latest()
        return run

    def point_latest(self) -> None:
        """``reports/latest`` → this run, when the run lives under a reports folder."""
        latest = self.path.parent / "latest"
        try:
            if latest.is_symlink() or latest.exists():
                latest.unlink()
            latest.symlink_to(self.path.name)
        except OSError:
            pass  # read-only or odd file systems: the run itself is what matters

    # --- writing ------------------------------------------------------------------------
    @property
    def results_path(self) -> Path:
        return self.path / "results.jsonl"

    def append_record(self, record: dict[str, Any]) -> None:
        if "record" not in record:
            raise ValueError("a results.jsonl record needs a 'record' tag (scenario, load, benchmark …)")
        line = json.dumps(record, default=str, separators=(",", ":")) + "\n"
        with open(self.results_path, "a", encoding="utf-8") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                fh.write(line)
                fh.flush()
                os.fsync(fh.fileno())
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def add_result(self, result: ScenarioResult) -> None:
        self.append_record(result.to_dict())

    def save_history(self, history: History, name: str | None = None) -> str:
        """Write a history; returns its path relative to the run directory."""
        stem = safe_name(name or history.session_id or f"session-{history.t0_ns}")
        rel = Path("histories") / f"{stem}.json"
        n = 1
        while (self.path / rel).exists():
            n += 1
            rel = Path("histories") / f"{stem}-{n}.json"
        (self.path / rel).write_text(history.to_json(), encoding="utf-8")
        return str(rel)

    def load_history(self, rel: str) -> History:
        return History.from_json((self.path / rel).read_text(encoding="utf-8"))

    def artifact_path(self, name: str) -> Path:
        """A path under ``artifacts/`` for a new artifact (folders created)."""
        path = self.path / "artifacts" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def relative(self, path: Path | str) -> str:
        return str(Path(path).resolve().relative_to(self.path.resolve()))

    def write_run_info(self, info: dict[str, Any]) -> None:
        existing = self.read_run_info()
        existing.update(info)
        (self.path / "run.json").write_text(json.dumps(existing, indent=2, default=str), encoding="utf-8")

    # --- reading ------------------------------------------------------------------------
    def read_run_info(self) -> dict[str, Any]:
        path = self.path / "run.json"
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}

    def records(self, kind: str | None = None) -> Iterator[dict[str, Any]]:
        """Every record (or those of one ``record`` tag). A corrupt line raises, naming its number."""
        with open(self.results_path, encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{self.results_path}:{n}: not valid JSON ({exc})") from exc
                if kind is None or rec.get("record") == kind:
                    yield rec

    def scenario_results(self) -> list[ScenarioResult]:
        return [ScenarioResult.from_dict(r) for r in self.records("scenario")]

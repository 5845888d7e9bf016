"""Run Locust as a subprocess: ``python -m locust -f harness/load/locustfile.py ...``.

Locust monkey-patches its process with gevent at import, which would break any asyncio code in
the same process, so the CLI and pytest never import it: they build a command line here, run it
with a hard time limit, and read what it wrote (raw samples, CSV, HTML, JSON stats).
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.load.settings import locust_args
from harness.load.steps import SHAPE_ENV, Shape

LOAD_DIR = Path(__file__).resolve().parent
LOCUSTFILE = LOAD_DIR / "locustfile.py"
SHAPEFILE = LOAD_DIR / "shape_steps.py"
KILL_GRACE_S = 20.0  # after SIGTERM (Locust then writes its reports), before SIGKILL


@dataclass
class LocustPlan:
    """One Locust process: what to run and where its files go."""

    host: str
    out_dir: Path  # artifacts/load (CSV, HTML, JSON, log); samples go to out_dir/samples
    settings: dict[str, Any] = field(default_factory=dict)  # harness_* user settings (settings.OPTIONS)
    users: int = 1
    spawn_rate: float = 1.0
    run_time_s: float | None = None  # Locust -t (headless); None with a shape or in web mode
    mode: str = "headless"  # headless | web | master | worker
    shape: Shape | None = None
    processes: int | None = None
    expect_workers: int | None = None
    expect_workers_max_wait_s: int = 60
    master_host: str = "127.0.0.1"
    master_port: int | None = None
    master_bind_host: str = "127.0.0.1"
    web_host: str = "127.0.0.1"
    web_port: int | None = None
    stop_timeout_s: float = 0.0
    python: str = sys.executable

    @property
    def samples_dir(self) -> Path:
        return self.out_dir / "samples"

    @property
    def files(self) -> dict[str, Path]:
        return {"html": self.out_dir / "locust.html", "csv_prefix": self.out_dir / "locust",
                "json": self.out_dir / "locust.json", "log": self.out_dir / "locust.log"}

    def command(self) -> list[str]:
        f = str(LOCUSTFILE) + (f",{SHAPEFILE}" if self.shape is not None else "")
        cmd = [self.python, "-m", "locust", "-f", f, "--loglevel", "INFO"]
        if self.host:  # a worker gets the host (and every harness setting) from its master
            cmd += ["--host", self.host]
        if self.mode == "worker":
            cmd += ["--worker", "--master-host", self.master_host]
            if self.master_port:
                cmd += ["--master-port", str(self.master_port)]
            if self.processes:
                cmd += ["--processes", str(self.processes)]
            return cmd + locust_args(self.settings)
        files = self.files
        cmd += ["--html", str(files["html"]), "--csv", str(files["csv_prefix"]), "--json-file",
                str(files["json"].with_suffix("")), "--only-summary", "--stop-timeout", f"{self.stop_timeout_s:g}"]
        if self.mode == "web":
            cmd += ["--web-host", self.web_host]
            if self.web_port:
                cmd += ["--web-port", str(self.web_port)]
        else:
            cmd += ["--headless"]
        if self.shape is None:  # in web mode: the form's defaults
            cmd += ["-u", str(self.users), "-r", f"{self.spawn_rate:g}"]
        if self.run_time_s is not None and self.shape is None and self.mode != "web":
            cmd += ["-t", f"{max(1, round(self.run_time_s))}s"]
        if self.mode == "master":
            cmd += ["--master", "--master-bind-host", self.master_bind_host,
                    "--expect-workers", str(self.expect_workers or 1),
                    "--expect-workers-max-wait", str(self.expect_workers_max_wait_s)]
            if self.master_port:
                cmd += ["--master-bind-port", str(self.master_port)]
        if self.processes and self.mode != "master":
            cmd += ["--processes", str(self.processes)]
        settings = dict(self.settings)
        settings.setdefault("harness_samples_dir", str(self.samples_dir))
        return cmd + locust_args(settings)

    def env(self) -> dict[str, str]:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("HARNESS_LOAD_SHAPE", None)
        if self.shape is not None:
            env[SHAPE_ENV] = self.shape.to_json()
        return env


@dataclass
class LocustResult:
    returncode: int | None
    timed_out: bool
    duration_s: float
    started: float  # wall clock
    log: Path

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def start_locust(plan: LocustPlan) -> subprocess.Popen:
    """Start Locust in its own process group (so its ``--processes`` children stop with it)."""
    plan.out_dir.mkdir(parents=True, exist_ok=True)
    plan.samples_dir.mkdir(parents=True, exist_ok=True)
    log = open(plan.files["log"], "ab")  # noqa: SIM115 - handed to the child, closed by wait_locust
    try:
        proc = subprocess.Popen(plan.command(), stdout=log, stderr=subprocess.STDOUT, env=plan.env(),
                                start_new_session=True)
    finally:
        log.close()
    return proc


def stop_process_group(proc: subprocess.Popen, grace_s: float = KILL_GRACE_S) -> None:
    """SIGTERM the process group we started (Locust stops users and writes reports), then SIGKILL."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)


def wait_locust(proc: subprocess.Popen, plan: LocustPlan, timeout_s: float, started: float) -> LocustResult:
    """Wait at most ``timeout_s``; past it, stop the process group and say so."""
    timed_out = False
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        timed_out = True
        stop_process_group(proc)
    return LocustResult(proc.returncode, timed_out, time.time() - started, started, plan.files["log"])


def run_locust(plan: LocustPlan, timeout_s: float, on_start: Callable[[int], None] | None = None) -> LocustResult:
    """Run Locust to its end (or ``timeout_s``); ``on_start`` gets its pid once it is started."""
    started = time.time()
    proc = start_locust(plan)
    try:
        if on_start is not None:
            on_start(proc.pid)
        return wait_locust(proc, plan, timeout_s, started)
    except BaseException:
        stop_process_group(proc, grace_s=5)
        raise


# --- what Locust wrote -------------------------------------------------------------------------
def locust_stats(plan: LocustPlan) -> dict[str, Any]:
    """Locust's own per-request figures (from its CSV: bucketed percentiles) for the record."""
    path = Path(f"{plan.files['csv_prefix']}_stats.csv")
    if not path.is_file():
        return {}
    rows = []
    with open(path, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            def num(key: str) -> float | None:
                try:
                    return round(float(row[key]), 3)
                except (KeyError, TypeError, ValueError):
                    return None
            rows.append({"type": row.get("Type") or "", "name": row.get("Name") or "",
                         "requests": int(float(row.get("Request Count") or 0)),
                         "failures": int(float(row.get("Failure Count") or 0)),
                         "median_ms": num("Median Response Time"), "p95_ms": num("95%"), "p99_ms": num("99%"),
                         "max_ms": num("Max Response Time"), "rps": num("Requests/s")})
    total = next((r for r in rows if r["name"] == "Aggregated"), None)
    return {"rows": [r for r in rows if r["name"] != "Aggregated"], "total": total}


def locust_failures(plan: LocustPlan, limit: int = 20) -> list[dict[str, Any]]:
    path = Path(f"{plan.files['csv_prefix']}_failures.csv")
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as fh:
        return [{"name": r.get("Name"), "error": (r.get("Error") or "")[:300], "count": int(float(r.get("Occurrences") or 0))}
                for r in list(csv.DictReader(fh))[:limit]]


def locust_json(plan: LocustPlan) -> list[dict[str, Any]]:
    path = plan.files["json"]
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []

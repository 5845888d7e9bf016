"""``harness run``: run scenario suites in pytest subprocesses, judge SLOs, render the report.

Each suite runs as ``python -m pytest scenarios/<suite> --run-dir DIR ...`` in its own process, so
a suite's heavy imports (Playwright, Locust) stay out of this one and a crash in one suite cannot
take the others down. Progress comes back through a small pytest plugin (this module, loaded with
``-p harness.runner``) that appends one JSON line per collection and per test to the file named
by ``HARNESS_PROGRESS_FILE``; the parent tails that file for its live display.

Exit codes: 0 pass; 1 an SLO or a check failed, or something is unknown; 2 a harness error
(pytest usage error, the server did not start, a bad SLO file, no tests collected).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from harness.cli import EXIT_FAIL, EXIT_HARNESS_ERROR, EXIT_PASS, HarnessError

PROFILES = ("ci", "nightly")
ENGINES = ("pocketsphinx", "scripted")
# Default suites per profile; a suite is only run by default when its folder has tests.
PROFILE_SUITES: dict[str, tuple[str, ...]] = {
    "ci": ("conformance", "chaos", "browser", "property", "relay"),
    "nightly": ("conformance", "chaos", "browser", "property", "relay", "load", "bench"),
}
SELFTEST = "selftest"  # not a folder of scenarios: harness.selftest drives the other suites
PROGRESS_ENV = "HARNESS_PROGRESS_FILE"
SCENARIOS_ENV = "HARNESS_SCENARIOS_DIR"
# pytest exit codes (pytest.ExitCode) and what they mean for a run
PYTEST_OK, PYTEST_TESTS_FAILED, PYTEST_NO_TESTS = 0, 1, 5


# === the pytest side: a tiny progress plugin ===============================================
def _progress_write(entry: dict[str, Any]) -> None:
    path = os.environ.get(PROGRESS_ENV)
    if not path:
        return
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(entry) + "\n")


def pytest_collection_finish(session: Any) -> None:
    # scenarios the harness plugin left out because the target lacks what they need (with why)
    left_out = getattr(session.config, "_harness_left_out", [])
    _progress_write({"kind": "collected", "count": len(session.items), "left_out": len(left_out),
                     "left_out_reasons": [why for _, why in left_out][:50]})


def pytest_runtest_logstart(nodeid: str, location: Any) -> None:
    _progress_write({"kind": "start", "nodeid": nodeid})


HARNESS_ERROR_PROPERTY = "harness_error"


@pytest.hookimpl(tryfirst=True)  # before pytest's own makes the report from item.user_properties
def pytest_runtest_makereport(item: Any, call: Any) -> None:
    """Mark a phase that raised a harness-side error (harness.errors.is_harness_side, or pytest's
    UsageError): the parent reads the class from here, never from the report's text."""
    from harness.errors import is_harness_side

    exc = call.excinfo.value if call.excinfo is not None else None
    if exc is not None and (is_harness_side(exc) or isinstance(exc, pytest.UsageError)):
        item.user_properties.append((HARNESS_ERROR_PROPERTY, f"{type(exc).__name__}: {exc}"[:800]))


def pytest_runtest_logreport(report: Any) -> None:
    failed = report.failed
    if report.when == "call" or failed or report.skipped:
        entry = {"kind": "phase", "nodeid": report.nodeid, "when": report.when, "outcome": report.outcome}
        if failed and report.when != "call":
            entry["text"] = str(report.longrepr)[-4000:]
        marked = [v for k, v in getattr(report, "user_properties", []) if k == HARNESS_ERROR_PROPERTY]
        if failed and marked:
            entry["harness_error"] = marked[-1]
        _progress_write(entry)


def pytest_runtest_logfinish(nodeid: str, location: Any) -> None:
    _progress_write({"kind": "finish", "nodeid": nodeid})


# === the parent side ==========================================================================
def default_scenarios_root() -> Path:
    """``$HARNESS_SCENARIOS_DIR``, else the suites shipped with the harness (the checkout's
    ``scenarios/``, or the installed ``harness_scenarios`` package)."""
    env = os.environ.get(SCENARIOS_ENV)
    if env:
        return Path(env)
    from harness.paths import shipped_scenarios

    return shipped_scenarios()


def suite_has_tests(folder: Path) -> bool:
    return any(folder.rglob("test_*.py"))


def known_suites(root: Path) -> list[str]:
    """Every scenario folder under ``root`` plus the self-test."""
    folders = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))) \
        if root.is_dir() else []
    return sorted(set(folders) - {SELFTEST}) + [SELFTEST]


def resolve_suites(spec: str | None, profile: str, root: Path) -> list[str]:
    """The suites to run, in order. Unknown names are a harness error naming the known ones."""
    known = known_suites(root)
    if spec:
        names = [s.strip() for s in spec.split(",") if s.strip()]
        if not names:
            raise HarnessError(f"--suite {spec!r} names no suite; known suites: {', '.join(known)}")
        unknown = [n for n in names if n not in known]
        if unknown:
            raise HarnessError(f"unknown suite {', '.join(map(repr, unknown))}; known suites: {', '.join(known)}"
                               f" (scenarios root: {root})")
        return list(dict.fromkeys(names))
    chosen = [s for s in PROFILE_SUITES[profile] if (root / s).is_dir() and suite_has_tests(root / s)]
    if not chosen:
        raise HarnessError(f"no suite of the {profile} profile ({', '.join(PROFILE_SUITES[profile])}) "
                           f"has tests under {root}")
    return chosen


@dataclass
class SuiteOutcome:
    """What one pytest subprocess did, as seen through the progress file and its exit code."""

    name: str
    total: int | None = None
    done: int = 0
    current: str = ""
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    errors: list[str] = field(default_factory=list)  # setup/teardown error texts
    harness_errors: list[str] = field(default_factory=list)  # "Class: message" of harness-side errors
    left_out: int = 0  # scenarios not run because the target lacks what they need
    left_out_reasons: list[str] = field(default_factory=list)
    exit_code: int | None = None
    log: str = ""
    duration_s: float = 0.0
    _outcomes: dict[str, str] = field(default_factory=dict)

    def feed(self, entry: dict[str, Any]) -> None:
        kind = entry.get("kind")
        if kind == "collected":
            self.total = int(entry["count"])
            self.left_out = int(entry.get("left_out", 0))
            self.left_out_reasons = list(entry.get("left_out_reasons", []))
        elif kind == "start":
            self.current = entry["nodeid"]
        elif kind == "phase":
            node = entry["nodeid"]
            if entry["outcome"] == "failed":
                self._outcomes[node] = "failed"
                if entry.get("harness_error"):
                    self.harness_errors.append(entry["harness_error"])
                if entry["when"] != "call" and entry.get("text"):
                    self.errors.append(entry["text"])
            elif entry["outcome"] == "skipped":
                self._outcomes.setdefault(node, "skipped")
            else:
                self._outcomes.setdefault(node, "passed")
        elif kind == "finish":
            self.done += 1
            outcome = self._outcomes.get(entry["nodeid"], "passed")
            setattr(self, outcome, getattr(self, outcome) + 1)
            if self.current == entry["nodeid"]:
                self.current = ""

    @property
    def harness_error(self) -> str | None:
        """Why this suite could not judge the backend, or None."""
        if self.exit_code is None:
            return "did not finish"
        if self.exit_code == PYTEST_NO_TESTS and not self.none_applicable:
            return "no tests collected"
        if self.exit_code not in (PYTEST_OK, PYTEST_TESTS_FAILED) and not self.none_applicable:
            return f"pytest exited with code {self.exit_code} (usage error, interrupted or internal error)"
        if self.harness_errors:  # by class (harness.errors), as the pytest side marked them
            return self.harness_errors[0]
        return None

    @property
    def none_applicable(self) -> bool:
        """Every scenario of the suite was left out (the target lacks what they need): nothing to
        judge, which is neither a pass nor a harness error."""
        return self.exit_code == PYTEST_NO_TESTS and not self.total and self.left_out > 0

    def status_word(self) -> str:
        if self.harness_error:
            return "error"
        if self.none_applicable:
            return "n/a"
        return "pass" if self.exit_code == PYTEST_OK else "fail"


@dataclass
class PytestOptions:
    """The harness options passed through to every pytest subprocess."""

    target: str | None = None
    api_key: str | None = None
    protocol: str = "reference"
    profile: str = "ci"
    slo: str | None = None
    defects: tuple[str, ...] = ()
    engine: str = "pocketsphinx"
    allow_remote: bool = False
    keyword: str | None = None
    target_image: str | None = None
    target_container: str | None = None
    container_port: int | None = None
    capabilities: str | None = None
    stream_url: str | None = None
    sut: str | None = None  # relay suite: the system under test's command, or
    sut_url: str | None = None  # the URL of one the user runs, with
    vendor_port: int | None = None  # the port it expects the vendor on
    relay_config: str | None = None

    def args(self) -> list[str]:
        out = ["--protocol", self.protocol, "--profile", self.profile, "--engine", self.engine]
        if self.capabilities:
            out.append(f"--capabilities={self.capabilities}")
        if self.stream_url:
            out += ["--stream-url", self.stream_url]
        if self.target:
            out += ["--target", self.target]
        if self.target_image:
            out += ["--target-image", self.target_image]
        if self.target_container:
            out += ["--target-container", self.target_container]
        if self.container_port:
            out += ["--container-port", str(self.container_port)]
        if self.api_key:
            out += ["--api-key", self.api_key]
        if self.slo:
            out += ["--slo", self.slo]
        for d in self.defects:
            out += ["--defect", d]
        if self.allow_remote:
            out.append("--allow-remote")
        if self.keyword:
            out += ["-k", self.keyword]
        for flag, value in (("--sut", self.sut), ("--sut-url", self.sut_url), ("--vendor-port", self.vendor_port),
                            ("--relay-config", self.relay_config)):
            if value is not None:
                out += [flag, str(value)]
        return out


def build_pytest_command(paths: Sequence[Path | str], run_dir: Path, options: PytestOptions,
                   extra: Sequence[str] = ()) -> list[str]:
    # The ini options the suites need are given here too, so that suites installed from the wheel
    # (no pyproject.toml above them) run exactly as they do in the checkout.
    return [sys.executable, "-m", "pytest", *map(str, paths), "--run-dir", str(run_dir),
            "-p", "harness.runner", "-p", "no:cacheprovider", "-q", "-rfE",
            "-o", "asyncio_mode=auto", "-o", "asyncio_default_fixture_loop_scope=function",
            *options.args(), *extra]


def run_pytest(name: str, paths: Sequence[Path | str], run_dir: Path, options: PytestOptions, *,
               log_path: Path, extra: Sequence[str] = (), on_progress: Callable[[SuiteOutcome], None] | None = None,
               timeout_s: float = 3600.0, env: dict[str, str] | None = None) -> SuiteOutcome:
    """Run one pytest subprocess, tailing its progress file; its output goes to ``log_path``."""
    outcome = SuiteOutcome(name=name, log=str(log_path))
    log_path.parent.mkdir(parents=True, exist_ok=True)
    progress = log_path.with_suffix(".progress.jsonl")
    progress.write_text("")
    cmd = build_pytest_command(paths, run_dir, options, extra)
    started = time.monotonic()
    with open(log_path, "w", encoding="utf-8") as log, open(progress, encoding="utf-8") as tail:
        log.write("$ " + " ".join(cmd) + "\n")
        log.flush()
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env={**os.environ, **(env or {}), PROGRESS_ENV: str(progress)})
        buffer = ""
        try:
            while True:
                exited = proc.poll() is not None
                chunk = tail.read()
                if chunk:
                    buffer += chunk
                    *lines, buffer = buffer.split("\n")
                    for line in lines:
                        if line.strip():
                            outcome.feed(json.loads(line))
                    if on_progress:
                        on_progress(outcome)
                if exited:
                    break
                if time.monotonic() - started > timeout_s:
                    proc.kill()
                    proc.wait()
                    outcome.harness_errors.append(f"suite {name} did not finish within {timeout_s:.0f} s")
                    break
                time.sleep(0.2)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
    outcome.exit_code = proc.returncode
    outcome.current = ""
    outcome.duration_s = time.monotonic() - started
    if on_progress:
        on_progress(outcome)
    return outcome


# === display =================================================================================
class Progress:
    """A live line per suite on a terminal (rich); plain lines otherwise (CI logs)."""

    def __init__(self, names: Sequence[str], stream=None):
        from rich.console import Console

        self.console = Console(file=stream or sys.stdout, highlight=False, markup=False)
        self.live_mode = self.console.is_terminal
        self.rows: dict[str, SuiteOutcome] = {n: SuiteOutcome(name=n) for n in names}
        self._printed_done: dict[str, int] = {}
        self._finished: set[str] = set()
        self._live = None

    def __enter__(self) -> Progress:
        if self.live_mode:
            from rich.live import Live

            self._live = Live(self._render(), console=self.console, refresh_per_second=4, transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self._live is not None:
            self._live.update(self._render())
            self._live.__exit__(*exc)

    def _render(self):
        from rich.table import Table

        table = Table.grid(padding=(0, 2))
        for row in self.rows.values():
            total = "?" if row.total is None else str(row.total)
            state = row.status_word() if row.exit_code is not None else ("running" if row.total is not None or row.done else "waiting")
            counts = f"{row.done}/{total}"
            counts_text = f"{row.passed} passed, {row.failed} failed" if row.done else ""
            detail = row.current if row.current and row.exit_code is None else counts_text
            table.add_row(row.name, counts, state, detail)
        return table

    def update(self, outcome: SuiteOutcome) -> None:
        self.rows[outcome.name] = outcome
        if self._live is not None:
            self._live.update(self._render())
            return
        if outcome.done > self._printed_done.get(outcome.name, 0):
            total = "?" if outcome.total is None else outcome.total
            self.console.print(f"[{outcome.name}] {outcome.done}/{total} done "
                               f"({outcome.passed} passed, {outcome.failed} failed)")
            self._printed_done[outcome.name] = outcome.done
        if outcome.exit_code is not None and outcome.name not in self._finished:
            self._finished.add(outcome.name)
            self.console.print(f"[{outcome.name}] finished: {outcome.status_word()} in {outcome.duration_s:.0f} s")


# === SLOs and the report =====================================================================
@dataclass
class SloLine:
    name: str
    status: str  # pass | fail | unknown
    detail: str


def evaluate_slos(run_path: Path, slo_file: str | None, profile: str) -> tuple[list[SloLine], str | None]:
    """Judge the run's samples against the SLO file; bad SLO files raise HarnessError."""
    from harness import slo as slo_mod

    try:
        results, path = slo_mod.evaluate_run(run_path, slo_file, profile)
    except (ValueError, OSError) as exc:  # SLOFileError is a ValueError and names the file
        raise HarnessError(f"bad SLO file: {exc}") from exc
    # The message repeats the SLO's name; the summary line already shows it.
    lines = [SloLine(r.name, r.status.value, r.message.removeprefix(f"{r.name}: ")) for r in results]
    return lines, str(path) if path else None


def render_report(run_path: Path, slo_file: str | None = None, history: str | None = None,
                  history_last: int | None = None) -> Path:
    """report.html, summary.json and junit.xml in the run directory (with the trend over the
    earlier runs in ``history`` when given)."""
    from harness.report import render_run
    from harness.report.trend import DEFAULT_LAST

    try:
        return Path(render_run(run_path, slo_file=slo_file, history=history, history_last=history_last or DEFAULT_LAST))
    except (ValueError, OSError) as exc:
        raise HarnessError(f"the report could not be rendered: {exc}") from exc


# === the command ===============================================================================
def configure_parser(p: argparse.ArgumentParser) -> None:
    # Defaults are None where harness.toml may give the value: a flag wins over the file, the
    # file over the built-in default (apply_project_config).
    p.add_argument("--target", help="backend base URL (default: start the embedded reference server)")
    p.add_argument("--api-key", help="API key for --target (default: $HARNESS_API_KEY)")
    p.add_argument("--protocol", default=None,
                   help="wire protocol of the target: a built-in codec, an installed codec plugin, "
                        "module:Class or path/to/codec.py:Class (default: reference)")
    p.add_argument("--capabilities", default=None, metavar="+A,-B",
                   help="capabilities the target has beyond its codec's (+name) or lacks (-name)")
    p.add_argument("--stream-url", default=None, metavar="URL",
                   help="where the stream goes when it is not --target's address: tcp://host:port for "
                        "Wyoming over TCP (default: the embedded server's own listener)")
    p.add_argument("--suite", help="comma-separated suites (default: the profile's suites that have tests)")
    p.add_argument("--profile", default=None, choices=PROFILES, help="ci (short, default) or nightly (long)")
    p.add_argument("--slo", help="SLO file (TOML; default: the profile's)")
    p.add_argument("--out", help="run directory to write (default: reports/<run-id>)")
    p.add_argument("--defect", action="append", default=[], metavar="NAME",
                   help="start the embedded reference server with this planted defect (repeatable)")
    p.add_argument("--engine", default="pocketsphinx", choices=ENGINES,
                   help="default engine of the embedded reference server")
    p.add_argument("--allow-remote", action="store_true", help="allow a target that is not on loopback")
    p.add_argument("--target-image", metavar="IMAGE",
                   help="start the backend from this Docker image for each suite (with --defect/--engine; "
                        "removed afterwards); `harness image build` makes the reference server's")
    p.add_argument("--target-container", metavar="NAME", help="a running Docker container as the backend")
    p.add_argument("--container-port", type=int, default=None, metavar="PORT",
                   help="the backend's port inside the container (default 8700)")
    p.add_argument("-k", dest="keyword", metavar="EXPR", help="only scenarios matching this pytest -k expression")
    g = p.add_argument_group("relay suite", "the system under test sits between the harness's client and the "
                             "vendor stand-in (see README, 'Testing a relay')")
    g.add_argument("--sut", metavar="CMD",
                   help="command that starts the system under test; placeholders {port}, {deepgram_url}, "
                        "{openai_url}, {assemblyai_url}, {speechmatics_url}, {vendor_key}, {api_key}, {defects} "
                        "(default: the example relay in examples/relay)")
    g.add_argument("--sut-url", metavar="URL", help="a system under test you run yourself (needs --vendor-port)")
    g.add_argument("--vendor-port", type=int, metavar="P",
                   help="with --sut-url: the loopback port your service expects the vendor on")
    g.add_argument("--relay-config", metavar="FILE", help="relay.toml: vendor, session correlation, bounds")
    p.add_argument("--history", metavar="DIR",
                   help="folder of earlier run directories: the report shows each SLO's trend over them, "
                        "what flipped since the previous run and each suite's time")
    p.add_argument("--history-last", type=int, default=None, metavar="N",
                   help="how many earlier runs of --history to show (default 10)")
    p.add_argument("--scenarios", default=None, metavar="DIR",
                   help=f"root of the scenario suites (default: ${SCENARIOS_ENV} or the shipped suites)")
    p.add_argument("--config", default=None, metavar="FILE",
                   help="settings file (default: ./harness.toml when there is one; see harness init)")


def apply_project_config(args: argparse.Namespace, env: dict[str, str] | None = None) -> dict[str, str]:
    """Fill every option the command line left unset from harness.toml (``--config`` or the one in
    the current directory), then the built-in defaults. Returns environment variables the suites
    need from the file (the browser client config)."""
    from harness import project_config

    env = os.environ if env is None else env
    cfg = project_config.load(args.config) if args.config else project_config.find()
    extra_env: dict[str, str] = {}
    if cfg is not None:
        args.target = args.target or cfg.get("target", "url")
        args.protocol = args.protocol or cfg.get("target", "protocol")
        args.stream_url = getattr(args, "stream_url", None) or cfg.get("target", "stream_url")
        caps = cfg.get("target", "capabilities")
        if args.capabilities is None and caps:
            args.capabilities = ",".join(str(c) for c in caps)
        key_env = cfg.get("target", "api_key_env")
        if not args.api_key and key_env:
            if not env.get(key_env):
                raise HarnessError(f"{cfg.path}: target.api_key_env names ${key_env}, which is not set")
            args.api_key = env[key_env]
        args.profile = args.profile or cfg.get("run", "profile")
        args.suite = args.suite or cfg.get("run", "suites")
        args.slo = args.slo or cfg.get("run", "slo")
        args.out = args.out or cfg.get("run", "out")
        args.allow_remote = args.allow_remote or bool(cfg.get("run", "allow_remote"))
        client = cfg.get("browser", "client")
        if client and "HARNESS_BROWSER_CLIENT" not in env:
            extra_env["HARNESS_BROWSER_CLIENT"] = client
    args.protocol = args.protocol or "reference"
    args.profile = args.profile or "ci"
    return extra_env


def _validate_container(args: argparse.Namespace) -> None:
    image, name = getattr(args, "target_image", None), getattr(args, "target_container", None)
    if not (image or name):
        if getattr(args, "container_port", None):
            raise HarnessError("--container-port needs --target-image or --target-container")
        return
    if args.target or (image and name):
        raise HarnessError("give one of --target, --target-image and --target-container")
    if name and args.defect:
        raise HarnessError("--defect applies to a server the harness starts (--target-image); "
                           f"container {name} runs with the flags it was started with")
    from harness.containers.engine import engine_problem

    problem = engine_problem()
    if problem:
        raise HarnessError(problem)
    from harness.containers.engine import client
    import docker

    try:
        if image:
            client().images.get(image)
        else:
            client().containers.get(name)
    except docker.errors.NotFound as exc:
        raise HarnessError(f"image {image} is not in the local image store (build it with `harness image build`)"
                           if image else f"no container named {name!r} (see `docker ps`)") from exc


def _validate(args: argparse.Namespace) -> None:
    _validate_container(args)
    from harness.protocols.capabilities import target_capabilities

    try:  # a codec that cannot be loaded, or a bad --capabilities, stops the run before anything runs
        args._capability_set = target_capabilities(args.protocol, not args.target, args.capabilities)
    except ValueError as exc:
        raise HarnessError(str(exc)) from exc
    if args.target:
        from harness.safety import require_loopback

        try:
            require_loopback(args.target, args.allow_remote)
        except ValueError as exc:
            raise HarnessError(str(exc)) from exc
        if args.defect:
            raise HarnessError("--defect switches on a defect of the embedded reference server; it cannot apply to --target")
        if not (args.api_key or os.environ.get("HARNESS_API_KEY")):
            raise HarnessError("--target needs --api-key (or HARNESS_API_KEY)")
    if getattr(args, "sut", None) and getattr(args, "sut_url", None):
        raise HarnessError("give --sut (a command the harness starts) or --sut-url (a service you run), not both")
    if getattr(args, "sut_url", None):
        from harness.safety import require_loopback

        if not getattr(args, "vendor_port", None):
            raise HarnessError("--sut-url needs --vendor-port: the loopback port your service expects the vendor on")
        try:
            require_loopback(args.sut_url, args.allow_remote)
        except ValueError as exc:
            raise HarnessError(str(exc)) from exc
    if getattr(args, "relay_config", None):
        from harness.relay.config import RelayConfig

        try:
            RelayConfig.load(args.relay_config)  # a bad relay.toml stops the run before anything starts
        except ValueError as exc:
            raise HarnessError(str(exc)) from exc
    if args.slo and not Path(args.slo).is_file():
        raise HarnessError(f"SLO file {args.slo} does not exist")
    if getattr(args, "history", None) and not Path(args.history).is_dir():
        raise HarnessError(f"--history {args.history} is not a directory (a folder of earlier run directories)")
    if getattr(args, "history_last", None) is not None and args.history_last < 1:
        raise HarnessError(f"--history-last must be at least 1, not {args.history_last}")
    if args.slo:
        from harness import slo as slo_mod

        try:
            slo_mod.load(args.slo)  # a bad SLO file stops the run before anything runs
        except ValueError as exc:
            raise HarnessError(f"bad SLO file: {exc}") from exc


def main(args: argparse.Namespace) -> int:
    from harness.results import RunDir

    suite_env = apply_project_config(args)
    _validate(args)
    root = Path(args.scenarios) if args.scenarios else default_scenarios_root()
    suites = resolve_suites(args.suite, args.profile, root)
    if SELFTEST in suites:
        from harness import selftest

        selftest.plan(root, args.profile, tuple(args.defect))  # unknown defect names stop the run here
    slo_file = _slo_file(args, suites, root)
    run = RunDir.create(args.out)
    options = PytestOptions(target=args.target, api_key=args.api_key, protocol=args.protocol,
                            profile=args.profile, slo=slo_file, defects=tuple(args.defect), engine=args.engine,
                            allow_remote=args.allow_remote, keyword=args.keyword,
                            target_image=getattr(args, "target_image", None),
                            target_container=getattr(args, "target_container", None),
                            container_port=getattr(args, "container_port", None),
                            capabilities=args.capabilities, stream_url=getattr(args, "stream_url", None),
                            sut=getattr(args, "sut", None), sut_url=getattr(args, "sut_url", None),
                            vendor_port=getattr(args, "vendor_port", None),
                            relay_config=getattr(args, "relay_config", None))
    run.write_run_info({"suites": suites, "profile": args.profile, "slo_file": slo_file,
                        "capabilities": sorted(args._capability_set),
                        "command": "harness run " + " ".join(_argv_of(args))})
    outcomes: list[SuiteOutcome] = []
    selftest_summary = None
    pytest_suites = [s for s in suites if s != SELFTEST]
    print(f"harness run: {', '.join(suites)} ({args.profile} profile) -> {run.path}", flush=True)
    with Progress(pytest_suites) as progress:
        for name in pytest_suites:
            outcome = run_pytest(name, [root / name], run.path, options,
                                 log_path=run.path / "artifacts" / "logs" / f"pytest-{name}.log",
                                 on_progress=progress.update, env=suite_env)
            outcomes.append(outcome)
            # each suite's wall time, for the trend of later runs (harness.report.trend)
            run.write_run_info({"suite_durations": {o.name: round(o.duration_s, 1) for o in outcomes}})
    if SELFTEST in suites:
        from harness import selftest

        selftest_summary = selftest.run_selftest(run, root, options)
    # SLOs judge the samples of this run's scenarios; a self-test alone has none of its own
    # (each defect's run is judged by whether it failed, in its own directory).
    slo_lines, slo_path = evaluate_slos(run.path, slo_file, args.profile) if outcomes else ([], None)
    slo_left_out = slos_left_out(slo_path, args._capability_set)
    report_path = render_report(run.path, slo_file, getattr(args, "history", None), getattr(args, "history_last", None))
    run.point_latest()
    code = exit_code(run, outcomes, slo_lines, selftest_summary)
    print_summary(run, outcomes, slo_lines, slo_path, report_path, selftest_summary, code, slo_left_out=slo_left_out)
    return code


def slos_left_out(slo_path: str | None, capabilities: frozenset[str]) -> list[str]:
    """"session_create_ms p(95)<2000 (needs session_api)" for each SLO the target cannot be judged by."""
    if not slo_path:
        return []
    from harness import slo as slo_mod

    return [f"{t.name} (needs {', '.join(lacking)})"
            for t, lacking in slo_mod.not_applicable(slo_mod.load(slo_path), capabilities)]


def _slo_file(args: argparse.Namespace, suites: Sequence[str], root: Path) -> str | None:
    """The SLO file this run is judged by, resolved now so that a bad one stops the run early:
    ``--slo``; else, when one suite runs alone and has its own ``slo.toml`` (a suite that does not
    produce every metric of the profile's file, such as property or bench), that one; else the
    profile's."""
    if args.slo:
        return str(Path(args.slo).resolve())
    pytest_suites = [s for s in suites if s != SELFTEST]
    if len(pytest_suites) == 1 and (root / pytest_suites[0] / "slo.toml").is_file():
        return str((root / pytest_suites[0] / "slo.toml").resolve())
    from harness import slo as slo_mod

    try:
        return str(slo_mod.default_slo_file(args.profile))
    except FileNotFoundError as exc:
        raise HarnessError(str(exc)) from exc


def _argv_of(args: argparse.Namespace) -> list[str]:
    out = []
    for key in ("target", "target_image", "target_container", "protocol", "suite", "profile", "slo", "out", "engine",
                "keyword", "sut", "sut_url", "vendor_port", "relay_config"):
        value = getattr(args, key, None)
        if value:
            out += [f"--{key.replace('_', '-')}" if key != "keyword" else "-k", str(value)]
    for d in args.defect:
        out += ["--defect", d]
    return out


def failing_scenarios(run: Any) -> list[tuple[str, str, list[str]]]:
    """(suite, scenario, messages) of every scenario record that did not pass."""
    out = []
    for rec in run.records("scenario"):
        if rec.get("status") == "pass":
            continue
        messages = [f"{v['status'].upper()} {v['name']}: {v.get('message', '')}"
                    for v in rec.get("verdicts", []) if v.get("status") != "pass"]
        if rec.get("error"):
            messages.append(f"ERROR {rec['error']}")
        if not messages:
            messages.append("no verdict was recorded")
        out.append((rec.get("suite", "?"), rec.get("scenario", "?"), messages))
    return out


def exit_code(run: Any, outcomes: Sequence[SuiteOutcome], slo_lines: Sequence[SloLine],
              selftest_summary: Any = None) -> int:
    if any(o.harness_error for o in outcomes):
        return EXIT_HARNESS_ERROR
    if selftest_summary is not None and (selftest_summary.harness_error
                                         or any(r.harness_error for r in selftest_summary.results)):
        return EXIT_HARNESS_ERROR  # a defect's run could not start: nothing was learned about it
    failed = any(o.exit_code != PYTEST_OK and not o.none_applicable for o in outcomes)
    failed = failed or any(line.status != "pass" for line in slo_lines)
    failed = failed or bool(failing_scenarios(run))
    failed = failed or (selftest_summary is not None and not selftest_summary.passed)
    return EXIT_FAIL if failed else EXIT_PASS


def _lacking_summary(outcomes: Sequence[SuiteOutcome]) -> list[str]:
    """One line per missing capability: how many scenarios of which suites it left out."""
    import re
    from collections import Counter

    counts: dict[str, Counter[str]] = {}
    for o in outcomes:
        for reason in o.left_out_reasons:
            for cap in re.findall(r"(?:^|; )([a-z_0-9]+) \(", reason.split(" lacks ", 1)[-1]):
                counts.setdefault(cap, Counter())[o.name] += 1
    return [f"{cap}: " + ", ".join(f"{n} {suite}" for suite, n in by_suite.items())
            for cap, by_suite in sorted(counts.items())]


def print_summary(run: Any, outcomes: Sequence[SuiteOutcome], slo_lines: Sequence[SloLine],
                  slo_path: str | None, report_path: Path | None, selftest_summary: Any, code: int,
                  stream=None, slo_left_out: Sequence[str] = ()) -> None:
    out = stream or sys.stdout
    w = lambda text="": print(text, file=out)  # noqa: E731
    verdict = {EXIT_PASS: "PASS", EXIT_FAIL: "FAIL", EXIT_HARNESS_ERROR: "HARNESS ERROR"}[code]
    w()
    w(f"== {verdict} ==")
    if code == EXIT_HARNESS_ERROR:
        w("SLOs: not judged (the run could not complete; see the harness error below)")
    elif slo_lines:
        w(f"SLOs ({slo_path}):")
        for line in slo_lines:
            w(f"  {line.status.upper():8} {line.name}" + (f"  {line.detail}" if line.detail else ""))
    elif outcomes:
        w("SLOs: none evaluated")
    if slo_left_out and code != EXIT_HARNESS_ERROR:
        w("SLOs not applicable to this target: " + "; ".join(slo_left_out))
    if outcomes:
        w("Suites:")
        for o in outcomes:
            extra = f"  HARNESS ERROR: {o.harness_error}" if o.harness_error else ""
            left = f", {o.left_out} left out" if o.left_out else ""
            w(f"  {o.status_word().upper():8} {o.name}: {o.passed} passed, {o.failed} failed, "
              f"{o.skipped} skipped{left} in {o.duration_s:.0f} s (log {run.relative(o.log)}){extra}")
        lacking = _lacking_summary(outcomes)
        if lacking:
            w("Left out (the target lacks what they need; each one's reason is in its suite's log):")
            for line in lacking:
                w(f"  {line}")
    if selftest_summary is not None:
        for line in selftest_summary.lines():
            w(line)
    failing = failing_scenarios(run)
    if failing:
        w("Failing scenarios:")
        for suite, name, messages in failing[:30]:
            w(f"  {suite}/{name}")
            for m in messages[:5]:
                w(f"    {m}")
        if len(failing) > 30:
            w(f"  … and {len(failing) - 30} more")
    if report_path and Path(report_path).exists():
        w(f"Report: {report_path}")
    w(f"Run directory: {run.path}")

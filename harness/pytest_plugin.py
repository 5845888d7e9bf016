"""The harness's pytest plugin: options, fixtures, and capture of every scenario into a run directory.

Scenarios (``scenarios/<suite>/test_*.py``) are ordinary pytest tests that use the ``scenario``
fixture to record what they did::

    def test_lifecycle(scenario, target):
        history = scenario.history(fixture_id="meeting-01")     # saved into the run directory
        ...drive a session...
        scenario.check(lifecycle.pipeline_events(history))      # a Verdict
        scenario.verify()                                       # fails the test on fail/unknown

When the test ends, the scenario's verdicts, histories, fault windows and artifacts are written
as one ``scenario`` record of ``results.jsonl``. A verdict that is ``unknown`` fails ``verify()``
too: unknown never passes a gate silently. An exception that is not an assertion is recorded as
a harness error (status unknown), never as a pass.
"""

from __future__ import annotations

import datetime as _dt
import os
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from harness.checks.verdict import Status, Verdict
from harness.history import FaultWindow, History
from harness.results import RunDir, ScenarioResult
from harness.safety import require_loopback

PROFILES = ("ci", "nightly")


@dataclass
class Target:
    """The backend under test: where to send HTTP and WebSocket traffic, and with which key.

    ``server`` is the embedded reference server when the harness started one (so process faults
    can kill and restart it); None for a user's backend given with ``--target``.
    """

    http_url: str
    api_key: str
    protocol: str = "reference"
    server: Any = None  # harness.services.ReferenceServer | None
    defects: tuple[str, ...] = ()
    stream_url: str | None = None  # the stream's address when not the HTTP URL's (Wyoming: tcp://host:port)

    @property
    def ws_url(self) -> str:
        return "ws" + self.http_url[len("http"):] if self.http_url.startswith("http") else self.http_url

    @property
    def embedded(self) -> bool:
        return self.server is not None

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}


@dataclass
class HarnessOptions:
    target: str | None
    api_key: str | None
    protocol: str
    profile: str
    slo: str | None
    run_dir: str | None
    defects: tuple[str, ...]
    engine: str
    allow_remote: bool
    target_image: str | None = None
    target_container: str | None = None
    container_port: int = 8700
    capabilities: str | None = None
    stream_url: str | None = None  # --stream-url: where the stream goes when not to --target's address
    sut: str | None = None  # the relay suite: a command that starts the system under test
    sut_url: str | None = None  # ... or the URL of one the user runs
    vendor_port: int | None = None  # ... and where it expects the vendor (the suite listens there)
    relay_config: str | None = None

    @property
    def container(self) -> bool:
        return bool(self.target_image or self.target_container)

    @property
    def nightly(self) -> bool:
        return self.profile == "nightly"

    def capabilities_for(self, protocol: str | None = None) -> frozenset[str]:
        """What the target can do when spoken to with ``protocol`` (default ``--protocol``): the
        codec's capabilities, the embedded server's, then ``--capabilities`` modifiers."""
        from harness.protocols.capabilities import target_capabilities

        return target_capabilities(protocol or self.protocol, not self.target, self.capabilities)


# --- options -------------------------------------------------------------------------------
def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("harness", "transcription harness")
    g.addoption("--target", default=os.environ.get("HARNESS_TARGET"),
                help="backend base URL (default: start the embedded reference server)")
    g.addoption("--api-key", default=os.environ.get("HARNESS_API_KEY") or os.environ.get("REFERENCE_API_KEY"),
                help="API key for --target")
    g.addoption("--protocol", default="reference",
                help="wire protocol of the target: a codec name, module:Class or path/to/codec.py:Class")
    g.addoption("--capabilities", default=None, metavar="+A,-B",
                help="capabilities the target has beyond its codec's (+name) or lacks (-name)")
    g.addoption("--stream-url", default=os.environ.get("HARNESS_STREAM_URL"), metavar="URL",
                help="where the stream goes when it is not --target's address: tcp://host:port for a "
                     "protocol over plain TCP (wyoming); default: the embedded server's own listener")
    g.addoption("--profile", default="ci", choices=PROFILES, help="ci (short) or nightly (long)")
    g.addoption("--slo", default=None, help="SLO file (TOML); default: the profile's")
    g.addoption("--run-dir", default=None, help="run directory to write (default: reports/<run-id>)")
    g.addoption("--defect", action="append", default=[], metavar="NAME",
                help="start the embedded reference server with this planted defect (repeatable)")
    g.addoption("--engine", default="pocketsphinx", choices=("pocketsphinx", "scripted"),
                help="default engine of the embedded reference server")
    g.addoption("--allow-remote", action="store_true", help="allow a target that is not on loopback")
    g.addoption("--target-image", default=None, metavar="IMAGE",
                help="start the backend from this Docker image for the session (removed afterwards)")
    g.addoption("--target-container", default=None, metavar="NAME",
                help="a running Docker container as the backend (its published --container-port)")
    g.addoption("--container-port", type=int, default=8700, metavar="PORT",
                help="the backend's port inside the container (default 8700)")
    g.addoption("--sut", default=None, metavar="CMD",
                help="relay suite: the command that starts the system under test ({port}, {deepgram_url}, "
                     "{vendor_key}, {api_key}, {defects} … filled in); default: the example relay")
    g.addoption("--sut-url", default=None, metavar="URL",
                help="relay suite: a system under test you run yourself (with --vendor-port)")
    g.addoption("--vendor-port", default=None, type=int, metavar="P",
                help="relay suite with --sut-url: the loopback port it expects the vendor on")
    g.addoption("--relay-config", default=None, metavar="FILE", help="relay suite: relay.toml to use")


def options_from_config(config: pytest.Config) -> HarnessOptions:
    return HarnessOptions(
        target=config.getoption("--target"),
        api_key=config.getoption("--api-key"),
        protocol=config.getoption("--protocol"),
        profile=config.getoption("--profile"),
        slo=config.getoption("--slo"),
        run_dir=config.getoption("--run-dir"),
        defects=tuple(config.getoption("--defect")),
        engine=config.getoption("--engine"),
        allow_remote=config.getoption("--allow-remote"),
        target_image=config.getoption("--target-image"),
        target_container=config.getoption("--target-container"),
        container_port=config.getoption("--container-port"),
        capabilities=config.getoption("--capabilities"),
        stream_url=config.getoption("--stream-url", None),
        sut=config.getoption("--sut", None),
        sut_url=config.getoption("--sut-url", None),
        vendor_port=config.getoption("--vendor-port", None),
        relay_config=config.getoption("--relay-config", None),
    )


CATCHES_MARKER = "catches(*defects): this scenario catches these planted defects (DEFECTS.md); the self-test runs it for them"
NEEDS_MARKER = ("needs(*capabilities): what this scenario needs of the target (harness.protocols.capabilities); "
                "left out at collection, with the reason printed, where the target lacks it")
OTHER_MARKERS = ("slow: long-running (nightly profile)", "toxiproxy: needs the toxiproxy-server binary",
                 "browser: needs Chromium")


def pytest_configure(config: pytest.Config) -> None:
    for line in (CATCHES_MARKER, NEEDS_MARKER, *OTHER_MARKERS):
        config.addinivalue_line("markers", line)
    opts = options_from_config(config)
    if sum(map(bool, (opts.target, opts.target_image, opts.target_container))) > 1:
        raise pytest.UsageError("give one of --target, --target-image and --target-container")
    if opts.target_container and opts.defects:
        raise pytest.UsageError("--defect applies to a server the harness starts (--target-image); "
                                "a running --target-container has the flags it was started with")
    try:
        opts.capabilities_for()  # a --protocol that cannot be loaded, or a bad --capabilities, stops here
    except ValueError as exc:  # CodecError is a ValueError too
        raise pytest.UsageError(str(exc)) from exc
    if opts.target and opts.defects:
        raise pytest.UsageError("--defect switches on a defect of the embedded reference server; it cannot apply to --target")
    if opts.target:
        try:
            require_loopback(opts.target, opts.allow_remote)
        except ValueError as exc:
            raise pytest.UsageError(str(exc)) from exc
    config._harness_options = opts  # type: ignore[attr-defined]
    config._harness_run_dir = None  # type: ignore[attr-defined]


def _run_dir(config: pytest.Config) -> RunDir:
    """Created on first use, so unit-test runs that never record a scenario leave no folder behind."""
    if config._harness_run_dir is None:  # type: ignore[attr-defined]
        opts: HarnessOptions = config._harness_options  # type: ignore[attr-defined]
        if opts.run_dir and (Path(opts.run_dir) / "results.jsonl").exists():
            run = RunDir(opts.run_dir)
        else:
            run = RunDir.create(opts.run_dir)
        # Fill in what the caller (harness run) did not already write, never overwrite it.
        known = run.read_run_info()
        info = {
            "target": opts.target or (f"container from image {opts.target_image}" if opts.target_image else
                                      f"container {opts.target_container}" if opts.target_container else
                                      "embedded reference server"),
            "protocol": opts.protocol, "profile": opts.profile,
            "defects": list(opts.defects), "engine": opts.engine,
            "started_at": _dt.datetime.now().isoformat(timespec="seconds"),
        }
        missing = {k: v for k, v in info.items() if k not in known}
        if "environment" not in known:
            from harness.report.environment import collect

            missing["environment"] = collect()
        if missing:
            run.write_run_info(missing)
        config._harness_run_dir = run  # type: ignore[attr-defined]
    return config._harness_run_dir  # type: ignore[attr-defined]


def item_protocol(item: pytest.Item, opts: HarnessOptions) -> str:
    """The protocol this item speaks: its ``protocol`` parameter (conformance variants), else ``--protocol``."""
    callspec = getattr(item, "callspec", None)
    return (callspec.params.get("protocol") if callspec else None) or opts.protocol


def unmet_needs(item: pytest.Item, opts: HarnessOptions) -> list[str]:
    """The capabilities ``item``'s ``needs`` markers ask for that its target lacks."""
    from harness.protocols.capabilities import check_names, missing

    needed: list[str] = []
    for mark in item.iter_markers("needs"):
        check_names(mark.args, f"{item.nodeid}: @pytest.mark.needs")
        needed += [n for n in mark.args if n not in needed]
    return missing(needed, opts.capabilities_for(item_protocol(item, opts))) if needed else []


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leave out every scenario whose ``needs`` the target does not meet, printing why."""
    from harness.protocols.capabilities import explain

    opts: HarnessOptions = config._harness_options  # type: ignore[attr-defined]
    dropped: dict[pytest.Item, list[str]] = {}
    for item in items:
        try:
            lacking = unmet_needs(item, opts)
        except ValueError as exc:
            raise pytest.UsageError(str(exc)) from exc
        if lacking:
            dropped[item] = lacking
    if not dropped:
        return
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    left_out = config.__dict__.setdefault("_harness_left_out", [])  # read by harness.runner's progress
    for item, lacking in dropped.items():
        why = f"the target ({item_protocol(item, opts)}) lacks {explain(lacking)}"
        left_out.append((item.nodeid, why))
        line = f"left out: {item.nodeid}: {why}"
        reporter.write_line(line) if reporter else print(line)
    config.hook.pytest_deselected(items=list(dropped))
    items[:] = [i for i in items if i not in dropped]


@pytest.fixture
def capabilities(request: pytest.FixtureRequest, pytestconfig: pytest.Config) -> frozenset[str]:
    """What the target can do as this scenario speaks to it (its ``protocol`` parameter or ``--protocol``)."""
    opts: HarnessOptions = pytestconfig._harness_options  # type: ignore[attr-defined]
    return opts.capabilities_for(item_protocol(request.node, opts))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item._harness_call_report = report  # type: ignore[attr-defined]
        item._harness_call_excinfo = call.excinfo  # type: ignore[attr-defined]


# --- fixtures ------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def harness_options(pytestconfig: pytest.Config) -> HarnessOptions:
    return pytestconfig._harness_options  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def run_dir(pytestconfig: pytest.Config) -> RunDir:
    """The run directory every scenario of this pytest session writes into."""
    return _run_dir(pytestconfig)


@pytest.fixture(scope="session")
def target(pytestconfig: pytest.Config) -> Any:
    """The backend under test: ``--target``, or the embedded reference server started for the session.

    The embedded server runs with test hooks on (hold_step, /debug/release) so stall and
    mid-pipeline scenarios can run; a user's backend may not have them, and those scenarios say so.
    """
    opts: HarnessOptions = pytestconfig._harness_options  # type: ignore[attr-defined]
    if opts.target:
        if not opts.api_key:
            raise pytest.UsageError("--target needs --api-key (or HARNESS_API_KEY)")
        yield Target(http_url=opts.target.rstrip("/"), api_key=opts.api_key, protocol=opts.protocol,
                     stream_url=opts.stream_url)
        return
    if opts.container:
        from harness.containers.target import container_server

        server = container_server(opts)
        try:
            yield Target(http_url=server.url, api_key=server.api_key, protocol=opts.protocol, server=server,
                         defects=opts.defects)
        finally:
            server.close()
        return
    from harness.relay import split_defects
    from harness.services import ReferenceServer

    # relay defects belong to the system under test of the relay suite, not to this server
    server = ReferenceServer(engine=opts.engine, defects=split_defects(opts.defects)[0], test_hooks=True)
    server.start()
    try:
        yield Target(http_url=server.url, api_key=server.api_key, protocol=opts.protocol,
                     server=server, defects=opts.defects, stream_url=opts.stream_url or embedded_stream_url(server, opts))
    finally:
        server.close()


def embedded_stream_url(server: Any, opts: HarnessOptions) -> str | None:
    """The embedded server's listener for a codec that streams over plain TCP (its
    ``stream_transport``), None for the others (their stream is at the HTTP address)."""
    from harness.protocols.registry import codec_class

    return server.wyoming_url if getattr(codec_class(opts.protocol), "stream_transport", None) == "tcp" else None


@pytest.fixture(scope="session")
def toxiproxy() -> Any:
    """(API URL of a running Toxiproxy, "") or (None, why there is none), for the whole session:
    ``TOXIPROXY_URL`` if set, else a toxiproxy-server started here and stopped at the end."""
    from harness.services import TOXIPROXY_MISSING, ServiceError, ToxiproxyServer, find_toxiproxy_server

    server = ToxiproxyServer()
    if not server.external_url and find_toxiproxy_server() is None:
        yield None, TOXIPROXY_MISSING
        return
    try:
        server.start()
    except ServiceError as exc:
        yield None, str(exc)
        return
    try:
        yield server.url, ""
    finally:
        server.stop()


@pytest.fixture(scope="session")
def manifest():
    """The audio fixtures' manifest (fixtures/audio/manifest.json)."""
    from harness.audio import load_manifest

    return load_manifest()


@dataclass
class ScenarioRecorder:
    """Collects what one scenario did; written to the run directory when the test ends."""

    suite: str
    name: str
    run: RunDir
    params: dict[str, Any] = field(default_factory=dict)
    verdicts: list[Verdict] = field(default_factory=list)
    histories: list[History] = field(default_factory=list)
    faults: list[FaultWindow] = field(default_factory=list)
    artifacts: dict[str, str] = field(default_factory=dict)
    started_ns: int = field(default_factory=time.monotonic_ns)
    started_at: str = field(default_factory=lambda: _dt.datetime.now().isoformat(timespec="seconds"))
    verified: bool = False

    def history(self, **meta: Any) -> History:
        """A new history for one session of this scenario (saved with the scenario)."""
        h = History(meta={"scenario": self.name, "suite": self.suite, **self.params, **meta})
        self.histories.append(h)
        return h

    def add_history(self, history: History) -> History:
        if history not in self.histories:
            self.histories.append(history)
        return history

    def check(self, verdict: Verdict) -> Verdict:
        self.verdicts.append(verdict)
        return verdict

    def run_check(self, check: Any, *args: Any, **kwargs: Any) -> Verdict:
        """Run ``check(*args, **kwargs)`` and record its verdict; a check that raises is recorded as
        one ``unknown`` verdict naming it and the exception, and the scenario goes on to the next."""
        from harness.checks.verdict import safe_check

        return self.check(safe_check(check, *args, **kwargs))

    def fault(self, window: FaultWindow) -> FaultWindow:
        self.faults.append(window)
        return window

    def artifact(self, label: str, path: Path | str) -> str:
        """Register a file (already written, usually under ``run.artifact_path``) as an artifact."""
        rel = self.run.relative(path)
        self.artifacts[label] = rel
        return rel

    def artifact_path(self, filename: str) -> Path:
        from harness.results import safe_name

        return self.run.artifact_path(f"{safe_name(self.name)}/{filename}")

    def problems(self) -> list[Verdict]:
        return [v for v in self.verdicts if v.status is not Status.PASS]

    def verify(self) -> None:
        """Fail the test if any verdict failed or is unknown, naming each; fail if there are none."""
        self.verified = True
        if not self.verdicts:
            pytest.fail(f"{self.name}: no verdict was recorded; a scenario must check something")
        bad = self.problems()
        if bad:
            lines = [f"{v.status.value.upper()} {v.name}: {v.message}" for v in bad]
            pytest.fail("\n".join(lines), pytrace=False)

    def result(self, error: str | None = None) -> ScenarioResult:
        histories = [self.run.save_history(h) for h in self.histories]
        faults = list(self.faults)
        for h in self.histories:
            faults.extend(w for w in h.faults if w not in faults)
        return ScenarioResult(
            suite=self.suite, scenario=self.name, verdicts=self.verdicts,
            sessions=[h.session_id for h in self.histories if h.session_id],
            histories=histories, faults=faults, artifacts=self.artifacts, params=self.params,
            duration_s=(time.monotonic_ns() - self.started_ns) / 1e9, started_at=self.started_at,
            error=error,
        )


def suite_of(item: pytest.Item) -> str:
    """``scenarios/chaos/test_x.py`` → ``chaos``; anything else → its folder's name."""
    parts = Path(str(item.path)).parts
    if "scenarios" in parts:
        i = parts.index("scenarios")
        if i + 1 < len(parts) - 1:
            return parts[i + 1]
    return Path(str(item.path)).parent.name


@pytest.fixture
def scenario(request: pytest.FixtureRequest, pytestconfig: pytest.Config):
    """Records one scenario (verdicts, histories, faults, artifacts) into the run directory."""
    opts: HarnessOptions = pytestconfig._harness_options  # type: ignore[attr-defined]
    name = request.node.nodeid.split("::", 1)[-1] if "::" in request.node.nodeid else request.node.name
    rec = ScenarioRecorder(
        suite=suite_of(request.node), name=f"{Path(str(request.node.path)).stem}::{name}",
        run=_run_dir(pytestconfig),
        params={"protocol": opts.protocol, "profile": opts.profile, "defects": list(opts.defects)},
    )
    yield rec
    error = None
    excinfo = getattr(request.node, "_harness_call_excinfo", None)
    if excinfo is not None and not isinstance(excinfo.value, (AssertionError, pytest.fail.Exception)):
        if isinstance(excinfo.value, pytest.skip.Exception):
            error = f"skipped: {excinfo.value}"
        else:
            error = "".join(traceback.format_exception_only(excinfo.type, excinfo.value)).strip()
    elif excinfo is None and not rec.verified and rec.problems():
        # The test forgot verify(): never let a failed verdict pass silently.
        rec.run.add_result(rec.result())
        pytest.fail(f"{rec.name}: verdicts failed but the scenario did not call verify(): "
                    + "; ".join(v.message for v in rec.problems()))
    rec.run.add_result(rec.result(error=error))

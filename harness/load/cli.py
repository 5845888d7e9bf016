"""``harness load``: Locust load against a transcription backend, in its own subprocess.

Modes::

    harness load --headless --users 50 --spawn-rate 10 --duration 60s [--ramp] [--processes 2]
    harness load --web [--web-port 8089] [--duration 30m]
    harness load --headless --master --expect-workers 2 --users 50 --duration 60s [--master-port 5557]
    harness load --worker --master-host 127.0.0.1 [--master-port 5557]
    harness load --find-capacity [--engine scripted,pocketsphinx]
    harness load --soak --duration 30m

Every mode but ``--worker`` starts the embedded reference server (``--engine``, ``--defect``)
unless ``--target`` is given, writes a run directory (``--out``, default ``reports/<run-id>``)
with a ``load`` record judged on the exact raw samples, Locust's HTML, CSV and JSON as artifacts,
and renders the report; the exit code is the report's gate (0 pass, 1 fail or unknown, 2 harness
error). Load always stops by itself (a bounded duration, a hard user cap) and goes to loopback
targets only unless ``--allow-remote``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import re
import shlex
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from harness.cli import HarnessError

MAX_DURATION_S = 12 * 3600.0
DEFAULT_WEB_DURATION_S = 30 * 60.0
DEFAULT_WORKER_DURATION_S = 3600.0
LOAD_SLO = Path(__file__).resolve().parent / "slo.toml"
CAPACITY_SLO = Path(__file__).resolve().parent / "capacity.toml"
SOAK_FIXTURE = "conversation-meeting"
STARTUP_ALLOWANCE_S = 90.0  # Locust start, report writing, stragglers
_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s?)?$")


def parse_duration(text: str, what: str = "--duration") -> float:
    """'90', '90s', '2m', '1h30m' -> seconds (> 0, at most 12 h); HarnessError otherwise."""
    m = _DURATION.match(text.strip().lower()) if text else None
    if not m or not any(m.groups()):
        raise HarnessError(f"{what} {text!r} is not a duration; use e.g. 90, 90s, 2m or 1h30m")
    h, mi, s = (float(g) if g else 0.0 for g in m.groups())
    seconds = h * 3600 + mi * 60 + s
    if not seconds > 0:
        raise HarnessError(f"{what} must be longer than 0 s, got {text!r}")
    if seconds > MAX_DURATION_S:
        raise HarnessError(f"{what} {text!r} exceeds the {MAX_DURATION_S / 3600:g} h limit of a load run")
    return seconds


def configure_parser(p: argparse.ArgumentParser) -> None:
    from harness.load.settings import HARD_MAX_USERS

    mode = p.add_argument_group("mode (headless unless one of these)")
    mode.add_argument("--headless", action="store_true", help="run without the web UI (the default)")
    mode.add_argument("--web", action="store_true", help="serve Locust's web UI on loopback")
    mode.add_argument("--worker", action="store_true", help="a Locust worker for a --master elsewhere")
    mode.add_argument("--find-capacity", action="store_true",
                      help="ramp users in steps until final latency p95 or failures break; per engine")
    mode.add_argument("--soak", action="store_true",
                      help="steady load with long sessions; the server's rss_bytes judged for growth")

    tgt = p.add_argument_group("target")
    tgt.add_argument("--target", help="backend base URL (default: start the embedded reference server)")
    tgt.add_argument("--api-key", help="API key for --target (default: $HARNESS_API_KEY or $REFERENCE_API_KEY)")
    tgt.add_argument("--allow-remote", action="store_true", help="allow a target that is not on loopback")
    tgt.add_argument("--protocol", default="reference", choices=("reference", "deepgram"))
    tgt.add_argument("--engine", default="scripted",
                     help="engine of each session (and of the embedded server): scripted or pocketsphinx; "
                          "--find-capacity takes a comma list")
    tgt.add_argument("--defect", action="append", default=[], metavar="NAME",
                     help="start the embedded server with this planted defect (repeatable)")

    load = p.add_argument_group("load")
    load.add_argument("--users", type=int, default=None, help=f"concurrent streams (default 10; at most {HARD_MAX_USERS})")
    load.add_argument("--spawn-rate", type=float, default=None, help="users started per second (default: users / 5, at least 1)")
    load.add_argument("--duration", help="how long sessions are started, e.g. 60s, 30m (required headless)")
    load.add_argument("--ramp", action="store_true", help="reach --users in equal steps over the duration (a LoadTestShape)")
    load.add_argument("--ramp-steps", type=int, default=5)
    load.add_argument("--processes", type=int, help="Locust's --processes: fork this many worker processes")
    load.add_argument("--fixture", action="append", default=[], metavar="ID",
                      help="fixture id to stream (repeatable; default: the utterances, or the conversation for --soak)")
    load.add_argument("--loops", type=int, default=None, help="stream the fixture this many times per session")
    load.add_argument("--script", help="scripted engine's script (default: the fixture's text)")
    load.add_argument("--chunk-ms", type=float, default=100.0)
    load.add_argument("--think-s", type=float, default=0.2, help="pause between a user's sessions")
    load.add_argument("--max-users", type=int, default=HARD_MAX_USERS, help="hard cap per Locust process (web UI too)")
    load.add_argument("--max-pacing-p99-ms", type=float, default=100.0,
                      help="pacing error p99 above which the run is unknown: the generator fell behind")

    dist = p.add_argument_group("distributed")
    dist.add_argument("--master", action="store_true", help="Locust master; workers run the users")
    dist.add_argument("--expect-workers", type=int, default=1)
    dist.add_argument("--master-host", default="127.0.0.1", help="(worker) the master's address")
    dist.add_argument("--master-port", type=int, default=5557)
    dist.add_argument("--web-port", type=int, default=None, help="(web) port of the UI (default: a free one)")

    cap = p.add_argument_group("capacity (--find-capacity)")
    cap.add_argument("--start-users", type=int, default=None)
    cap.add_argument("--step-users", type=int, default=None)
    cap.add_argument("--step-duration", default=None, help="per step (default 20s scripted, 40s pocketsphinx)")
    cap.add_argument("--min-finals", type=int, default=3, help="final latency samples a step needs to be judged")
    cap.add_argument("--max-time", default="10m", help="per engine")
    cap.add_argument("--final-p95-ms", type=float, default=500.0, help="a step breaks above this final latency p95")

    soak = p.add_argument_group("soak (--soak)")
    soak.add_argument("--rss-interval", type=float, default=2.0, help="seconds between /health samples")
    soak.add_argument("--warmup", default=None, help="left out of the growth fit (default: 20%% of the duration, 20 s to 5 m)")
    soak.add_argument("--max-slope-mb-per-min", type=float, default=2.0)
    soak.add_argument("--max-growth-mb", type=float, default=25.0)

    out = p.add_argument_group("output")
    out.add_argument("--out", help="run directory (default: reports/<run-id>)")
    out.add_argument("--slo", help="SLO file (default: harness/load/slo.toml, capacity.toml for --find-capacity)")
    out.add_argument("--no-report", action="store_true", help="write the run directory but render no report")


# --- validation --------------------------------------------------------------------------------
def _mode(args: argparse.Namespace) -> str:
    chosen = [m for m in ("web", "worker", "find_capacity", "soak") if getattr(args, m)]
    if len(chosen) > 1:
        raise HarnessError("choose one of --web, --worker, --find-capacity, --soak, not " +
                           " and ".join("--" + c.replace("_", "-") for c in chosen))
    if args.headless and chosen and chosen[0] in ("web", "worker"):
        raise HarnessError(f"--headless and --{chosen[0]} contradict each other")
    return chosen[0] if chosen else "headless"


def _check_common(args: argparse.Namespace, mode: str) -> None:
    from harness.load.settings import HARD_MAX_USERS
    from harness.safety import RemoteTargetError, require_loopback

    if args.users is not None and not 1 <= args.users <= HARD_MAX_USERS:
        raise HarnessError(f"--users must be within 1..{HARD_MAX_USERS} (the hard cap of a load run), got {args.users}")
    if not 1 <= args.max_users <= HARD_MAX_USERS:
        raise HarnessError(f"--max-users must be within 1..{HARD_MAX_USERS}, got {args.max_users}")
    if args.spawn_rate is not None and not args.spawn_rate > 0:
        raise HarnessError(f"--spawn-rate must be > 0, got {args.spawn_rate}")
    if args.processes is not None and not 1 <= args.processes <= (os.cpu_count() or 1) * 4:
        raise HarnessError(f"--processes must be within 1..{(os.cpu_count() or 1) * 4}, got {args.processes}")
    if args.master and mode not in ("headless",):
        raise HarnessError("--master runs a headless load; it cannot be combined with --" + mode.replace("_", "-"))
    if args.master and args.processes:
        raise HarnessError("--master and --processes both distribute the users; use one")
    if args.expect_workers < 1:
        raise HarnessError(f"--expect-workers must be >= 1, got {args.expect_workers}")
    if args.ramp and mode != "headless":
        raise HarnessError("--ramp shapes a headless load")
    if args.ramp_steps < 1:
        raise HarnessError(f"--ramp-steps must be >= 1, got {args.ramp_steps}")
    if args.target and args.defect:
        raise HarnessError("--defect switches on a defect of the embedded reference server; it cannot apply to --target")
    try:
        if args.target:
            require_loopback(args.target, args.allow_remote)
        if mode == "worker":
            require_loopback(f"http://{args.master_host}", args.allow_remote)
    except RemoteTargetError as exc:
        raise HarnessError(str(exc)) from exc
    if args.target and not (args.api_key or os.environ.get("HARNESS_API_KEY") or os.environ.get("REFERENCE_API_KEY")):
        raise HarnessError("--target needs --api-key (or $HARNESS_API_KEY)")
    for engine in _engines(args):
        if engine not in ("scripted", "pocketsphinx"):
            raise HarnessError(f"unknown engine {engine!r}; known: scripted, pocketsphinx")
    if len(_engines(args)) > 1 and mode != "find_capacity":
        raise HarnessError("several engines are for --find-capacity only; give one --engine")


def _engines(args: argparse.Namespace) -> list[str]:
    return [e.strip() for e in str(args.engine).split(",") if e.strip()] or ["scripted"]


def _settings(args: argparse.Namespace, engine: str, fixtures: list[str], loops: int, duration_s: float,
              api_key: str | None) -> dict[str, Any]:
    """The locustfile's settings; fails early (HarnessError) on what the locustfile would refuse."""
    from harness.load.settings import LoadSettings, SettingsError

    s = LoadSettings(host="http://127.0.0.1", api_key=api_key or "-", protocol=args.protocol, engine=engine,
                     fixtures=tuple(fixtures), script=args.script, loops=loops, chunk_ms=args.chunk_ms,
                     think_s=args.think_s, duration_s=duration_s, max_users=args.max_users,
                     allow_remote=args.allow_remote)
    try:
        s.validate()
        chosen = s.resolve_fixtures()
        from harness.load.client import SessionSpec

        for f in chosen:  # the script / fixture combination must make sense for the engine
            SessionSpec.build(f, engine, loops, args.script, args.chunk_ms)
    except (SettingsError, ValueError) as exc:
        raise HarnessError(str(exc)) from exc
    out = {"harness_protocol": args.protocol, "harness_engine": engine, "harness_fixtures": ",".join(fixtures) or None,
           "harness_script": args.script, "harness_loops": loops, "harness_chunk_ms": args.chunk_ms,
           "harness_think_s": args.think_s, "harness_duration_s": duration_s, "harness_max_users": args.max_users,
           "harness_allow_remote": "1" if args.allow_remote else None}
    return out


def max_session_s(args: argparse.Namespace, fixtures: list[str], loops: int) -> float:
    """The longest session's audio time plus finalize and pipeline: how long a drain must wait."""
    from harness.audio import load_manifest
    from harness.load.settings import LoadSettings

    chosen = LoadSettings("http://x", "-", fixtures=tuple(fixtures)).resolve_fixtures(load_manifest())
    return max(f.duration_s for f in chosen) * loops + 10.0


# --- target ------------------------------------------------------------------------------------
@contextmanager
def _target(args: argparse.Namespace, engine: str) -> Iterator[tuple[str, str, Any]]:
    """(url, api key, embedded server or None): ``--target``, or the embedded reference server."""
    if args.target:
        yield args.target.rstrip("/"), args.api_key or os.environ.get("HARNESS_API_KEY") or os.environ["REFERENCE_API_KEY"], None
        return
    from harness.services import ReferenceServer, ServiceError

    server = ReferenceServer(engine=engine, defects=args.defect)
    try:
        server.start()
    except ServiceError as exc:
        server.close()
        raise HarnessError(f"the embedded reference server did not start: {exc}") from exc
    try:
        yield server.url, server.api_key, server
    finally:
        server.close()


def _run_info(args: argparse.Namespace, target: str, engine: str, slo: Path, mode: str) -> dict[str, Any]:
    return {"target": args.target or f"embedded reference server ({target})", "protocol": args.protocol,
            "profile": "load", "engine": engine, "defects": list(args.defect), "mode": mode,
            "started_at": _dt.datetime.now().isoformat(timespec="seconds"),
            "command": "harness load " + " ".join(shlex.quote(a) for a in sys.argv[2:]) if len(sys.argv) > 1 else "",
            "slo_file": str(slo)}


def _slo_file(args: argparse.Namespace, default: Path) -> Path:
    path = Path(args.slo) if args.slo else default
    if not path.is_file():
        raise HarnessError(f"SLO file {path} does not exist")
    from harness.slo import SLOFileError, load

    try:
        load(path)
    except SLOFileError as exc:
        raise HarnessError(str(exc)) from exc
    return path


def _finish(run: Any, slo: Path, no_report: bool) -> int:
    """Render the report (unless told not to) and return the gate's exit code."""
    from harness.checks.verdict import Status, Verdict, combine

    if no_report:
        statuses = [Verdict.from_dict(v) for rec in run.records() for v in rec.get("verdicts") or []]
        status = combine(statuses)
        print(f"{status.value.upper()} (report not rendered)\nRun directory: {run.path}")
        return 0 if status is Status.PASS else 1
    from harness.report.render import render

    paths = render(run.path, slo_file=slo)
    print(paths.status.value.upper())
    for reason in paths.reasons:
        print(f"  {reason}")
    print(f"Report: {paths.html}")
    return paths.exit_code


def _print_outcome(outcome: Any) -> None:
    s = outcome.summary
    sess = s["sessions"]
    print(f"{outcome.job.name}: {sess['total']} session(s): {sess['ok']} ok, {sess['failed']} failed, "
          f"{sess['interrupted']} interrupted; peak {sess['peak_open']} open; {s['failures']['total']} failure(s)")
    for name, d in s["steps"].items():
        if d.get("count"):
            print(f"  {name:<15} n={d['count']:<6} p50 {d['p50']:>9.1f}  p95 {d['p95']:>9.1f}  p99 {d['p99']:>9.1f}  max {d['max']:>9.1f} ms")
    p = s["pacing_ms"]
    if p.get("count"):
        print(f"  pacing error    n={p['count']:<6} p50 {p['p50']:>9.2f}  p95 {p['p95']:>9.2f}  p99 {p['p99']:>9.2f}  max {p['max']:>9.2f} ms")
    for f in s["failures"]["top"][:5]:
        print(f"  failure x{f['count']}: {f['error'][:200]}")
    if outcome.generator is not None:
        from harness.load.generator import summary_lines

        print("\n".join(summary_lines(outcome.generator)))


# --- modes -------------------------------------------------------------------------------------
def _headless(args: argparse.Namespace, mode: str) -> int:
    from harness.load.job import LoadJob, LoadRunError, SoakOptions, load_record, run_job, soak_record
    from harness.load.runner import LocustPlan
    from harness.load.soak import GrowthLimits
    from harness.load.steps import ramp
    from harness.results import RunDir

    if not args.duration:
        raise HarnessError(f"harness load {'--soak' if mode == 'soak' else '--headless'} needs --duration "
                           "(e.g. --duration 60s): a load run always stops by itself")
    duration = parse_duration(args.duration)
    engine = _engines(args)[0]
    soak = mode == "soak"
    fixtures = args.fixture or ([SOAK_FIXTURE] if soak else [])
    # A soak loops its users over the one-minute conversation; from ten minutes on, each session
    # streams it twice, so sessions live long enough for per-session state to matter.
    loops = args.loops if args.loops is not None else (2 if soak and duration >= 600 else 1)
    users = args.users or 10
    rate = args.spawn_rate or max(1.0, users / 5)
    # Sessions stop starting at `duration`; a drain then lets the last ones finish before Locust
    # stops (its stop work stalls the event loop). A soak has long sessions: it stops them instead.
    settings = _settings(args, engine, fixtures, loops, 0.0 if soak else duration, args.api_key)
    drain = 0.0 if soak else max_session_s(args, fixtures, loops)
    slo = _slo_file(args, LOAD_SLO)
    limits = None
    if soak:
        warmup = parse_duration(args.warmup, "--warmup") if args.warmup else min(300.0, max(20.0, duration * 0.2))
        limits = GrowthLimits(warmup_s=warmup, max_slope_mb_per_min=args.max_slope_mb_per_min,
                              max_growth_mb=args.max_growth_mb)
    run = RunDir.create(args.out)
    with _target(args, engine) as (url, api_key, _server):
        settings["harness_api_key"] = api_key
        shape = ramp(users, duration, args.ramp_steps, rate, hold_s=drain) if args.ramp else None
        plan = LocustPlan(host=url, out_dir=run.artifact_path("load"), settings=settings, users=users,
                          spawn_rate=rate, run_time_s=duration + drain, mode="master" if args.master else "headless",
                          shape=shape, processes=args.processes, expect_workers=args.expect_workers if args.master else None,
                          master_port=args.master_port)
        kind = "soak" if soak else ("ramp" if args.ramp else "headless")
        name = f"{kind}: {users} users, {duration:g} s, {engine}" + (f", {args.processes} processes" if args.processes else "") \
            + (f", master + {args.expect_workers} workers" if args.master else "")
        params = {"mode": kind, "users": users, "spawn_rate": rate, "duration_s": duration, "drain_s": drain,
                  "engine": engine, "protocol": args.protocol, "fixtures": ",".join(fixtures) or "utterances",
                  "loops": loops, "processes": args.processes, "master": args.master,
                  "expect_workers": args.expect_workers if args.master else None, "target": url}
        job = LoadJob(name, plan, timeout_s=duration + drain + STARTUP_ALLOWANCE_S + (60 if args.master else 0),
                      max_pacing_p99_ms=args.max_pacing_p99_ms, params=params,
                      soak=SoakOptions(api_key, args.rss_interval, limits) if soak and limits else None)
        run.write_run_info(_run_info(args, url, engine, slo, kind))
        if args.master:
            print(f"Locust master on 127.0.0.1:{args.master_port}, waiting for {args.expect_workers} worker(s): "
                  f"harness load --worker --master-port {args.master_port}")
        print(f"harness load: {name} against {url}; run directory {run.path}", flush=True)
        try:
            outcome = run_job(job)
        except LoadRunError as exc:
            raise HarnessError(str(exc)) from exc
    run.append_record(load_record(outcome, run))
    srec = soak_record(outcome, run)
    if srec:
        run.append_record(srec)
        print(f"  memory: {outcome.soak_verdict.message}")  # type: ignore[union-attr]
    _print_outcome(outcome)
    return _finish(run, slo, args.no_report)


def _web(args: argparse.Namespace) -> int:
    from harness.load import runner
    from harness.load.job import LoadJob, load_record
    from harness.load.samples import read_samples
    from harness.results import RunDir
    from harness.services import free_port

    duration = parse_duration(args.duration) if args.duration else DEFAULT_WEB_DURATION_S
    engine = _engines(args)[0]
    settings = _settings(args, engine, args.fixture, args.loops or 1, 0.0, args.api_key)
    slo = _slo_file(args, LOAD_SLO)
    run = RunDir.create(args.out)
    port = args.web_port or free_port()
    with _target(args, engine) as (url, api_key, _server):
        settings["harness_api_key"] = api_key
        users = args.users or 10
        plan = runner.LocustPlan(host=url, out_dir=run.artifact_path("load"), settings=settings, users=users,
                                 spawn_rate=args.spawn_rate or max(1.0, users / 5), mode="web", web_port=port)
        run.write_run_info(_run_info(args, url, engine, slo, "web"))
        started = time.time()
        proc = runner.start_locust(plan)
        print(f"Locust web UI: http://127.0.0.1:{port}  (target {url}; stops by itself after {duration:g} s; "
              f"Ctrl-C to stop now)", flush=True)
        try:
            result = runner.wait_locust(proc, plan, duration, started)
        except KeyboardInterrupt:
            runner.stop_process_group(proc)
            result = runner.LocustResult(proc.returncode, False, time.time() - started, started, plan.files["log"])
    samples = read_samples(plan.samples_dir)
    if not samples.sessions:
        print(f"No session ran; Locust log: {result.log}")
        return 0
    from harness.load.job import LoadOutcome
    from harness.load.samples import summarize, verdicts

    job = LoadJob(f"web: {engine}", plan, duration, args.max_pacing_p99_ms, params={"mode": "web", "engine": engine, "target": url})
    outcome = LoadOutcome(job, result, samples, summarize(samples, start=started),
                          verdicts(samples, args.max_pacing_p99_ms, who=job.name))
    run.append_record(load_record(outcome, run))
    _print_outcome(outcome)
    return _finish(run, slo, args.no_report)


def _worker(args: argparse.Namespace) -> int:
    from harness.load import runner

    duration = parse_duration(args.duration) if args.duration else DEFAULT_WORKER_DURATION_S
    out = Path(args.out) if args.out else Path("reports") / f"load-worker-{os.getpid()}"
    plan = runner.LocustPlan(host="", out_dir=out, mode="worker", master_host=args.master_host,
                             master_port=args.master_port, processes=args.processes)
    print(f"Locust worker for master {args.master_host}:{args.master_port} (stops with the master, "
          f"or after {duration:g} s); log {plan.files['log']}", flush=True)
    started = time.time()
    proc = runner.start_locust(plan)
    try:
        result = runner.wait_locust(proc, plan, duration + STARTUP_ALLOWANCE_S, started)
    except KeyboardInterrupt:
        runner.stop_process_group(proc)
        return 2
    if result.timed_out:
        print(f"worker stopped after its {duration:g} s limit")
    return 0 if result.returncode == 0 else (1 if result.returncode == 1 else 2)


def _capacity(args: argparse.Namespace) -> int:
    from harness.checks.verdict import Status, Verdict
    from harness.load.job import LoadJob, LoadRunError, load_record, run_job
    from harness.load.limit import capacity_figures, capacity_sentence
    from harness.load.runner import LocustPlan
    from harness.load.samples import StepCriteria
    from harness.load.steps import Judge, capacity_steps, judge_all, largest_held, read_steps
    from harness.results import RunDir

    engines = _engines(args)
    if args.min_finals < 1:
        raise HarnessError(f"--min-finals must be >= 1, got {args.min_finals}")
    max_time = parse_duration(args.max_time, "--max-time")
    slo = _slo_file(args, CAPACITY_SLO)
    run = RunDir.create(args.out)
    with _target(args, engines[0]) as (url, api_key, _server):
        run.write_run_info(_run_info(args, url, ",".join(engines), slo, "find-capacity"))
        for engine in engines:
            # A real engine gives one final per utterance: its steps need longer to gather samples.
            step_s = parse_duration(args.step_duration or ("20s" if engine == "scripted" else "40s"), "--step-duration")
            start = args.start_users or (10 if engine == "scripted" else 1)
            step = args.step_users or (10 if engine == "scripted" else 1)
            max_users = args.users or (300 if engine == "scripted" else 30)
            fixtures = args.fixture
            settings = _settings(args, engine, fixtures, args.loops or 1, 0.0, api_key)
            session_s = max_session_s(args, fixtures, args.loops or 1)
            settings["harness_api_key"] = api_key
            out_dir = run.artifact_path(f"load/capacity-{engine}")
            judge = Judge(samples_dir=str(out_dir / "samples"), steps_file=str(out_dir / "steps.jsonl"),
                          criteria=StepCriteria(final_p95_ms=args.final_p95_ms, min_finals=args.min_finals),
                          settle_s=min(5.0, step_s / 4),
                          delay_s=min(session_s + 2.0, step_s))
            try:
                shape = capacity_steps(start, step, max_users, step_s, args.spawn_rate or max(1.0, step / 2), max_time, judge)
            except ValueError as exc:
                raise HarnessError(str(exc)) from exc
            plan = LocustPlan(host=url, out_dir=out_dir, settings=settings, shape=shape, mode="headless",
                              processes=args.processes)
            name = f"capacity: {engine}"
            print(f"harness load --find-capacity: {engine}: {start}..{shape.stages[-1].users} users in steps of {step}, "
                  f"{step_s:g} s each (at most {shape.total_s:g} s)", flush=True)
            job = LoadJob(name, plan, timeout_s=shape.total_s + STARTUP_ALLOWANCE_S, max_pacing_p99_ms=None,
                          params={"mode": "find-capacity", "engine": engine, "start_users": start, "step_users": step,
                                  "max_users": max_users, "step_s": step_s, "final_p95_ms": args.final_p95_ms,
                                  "target": url})
            try:
                outcome = run_job(job)
            except LoadRunError as exc:
                raise HarnessError(str(exc)) from exc
            limit = _measure_limit(args, engine)
            wall_start, live = read_steps(judge.steps_file)
            run_end = outcome.samples.span[1] if outcome.samples.span else time.time()
            results = judge_all(shape, wall_start or outcome.locust.started, run_end)
            held, broke = largest_held([r.to_dict() for r in results])
            if held is None:
                verdict = Verdict("load.capacity", Status.FAIL if broke and broke["verdict"] == "broke" else Status.UNKNOWN,
                                  f"{name}: {capacity_sentence(0, args.final_p95_ms, limit)}; not even {start} "
                                  f"user(s) held: " + (broke["why"] if broke else "no step ran"),
                                  {"capacity_users": [0]})
            else:
                tail = (f"; broke at {broke['users']} users: {broke['why']}" if broke and broke["verdict"] == "broke"
                        else f"; {broke['users']} users could not be judged: {broke['why']}" if broke
                        else "; every step held (raise --max-users or --max-time to go further)")
                verdict = Verdict("load.capacity", Status.PASS,
                                  f"{name}: {capacity_sentence(held, args.final_p95_ms, limit)}{tail}",
                                  {"capacity_users": [held]})
            record = load_record(outcome, run, with_verdicts=False)
            record["capacity"] = {"engine": engine, "largest_users_held": held,
                                  "broke_at_users": broke["users"] if broke else None,
                                  "reason": broke["why"] if broke else "every step held",
                                  "final_p95_ms_limit": args.final_p95_ms,
                                  **capacity_figures(held, limit),
                                  "summary": capacity_sentence(held, args.final_p95_ms, limit)}
            record["capacity_steps"] = [{"step": r.step, "users": r.users, "verdict": r.verdict, "why": r.why,
                                         **{k: v for k, v in r.figures.items()}} for r in results]
            record["capacity_live_steps"] = [{"step": s["step"], "users": s["users"], "verdict": s["verdict"]} for s in live]
            record["verdicts"] = [verdict.to_dict()]
            record["status"] = verdict.status.value
            run.append_record(record)
            print(verdict.message, flush=True)
            if outcome.generator is not None:
                from harness.load.generator import summary_lines

                print("\n".join(summary_lines(outcome.generator)), flush=True)
    return _finish(run, slo, args.no_report)


def _measure_limit(args: argparse.Namespace, engine: str) -> Any:
    """The engine's physical limit (cores / RTF) measured now, after its load, or None.

    Only a CPU-bound engine of the embedded server has one; a failed measurement is printed and the
    capacity is then stated without a ratio (never silently)."""
    from harness.load.limit import CPU_BOUND_ENGINES, LimitError, measure_limit

    if engine not in CPU_BOUND_ENGINES or args.target:
        return None
    print(f"measuring {engine}'s real-time factor (the limit cores / RTF) ...", flush=True)
    try:
        limit = measure_limit()
    except LimitError as exc:
        print(f"  no limit: {exc}", flush=True)
        return None
    print(f"  RTF {limit.rtf:.3f} CPU ({limit.rtf_wall:.3f} wall) on {limit.cores} cores: limit "
          f"{limit.streams:.1f} streams; load average {limit.load_avg}", flush=True)
    return limit


def _stop_on_sigterm() -> None:
    """SIGTERM unwinds like Ctrl-C, so Locust's process group and the embedded server are stopped."""
    import signal
    import threading

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)


def main(args: argparse.Namespace) -> int:
    mode = _mode(args)
    _check_common(args, mode)
    _stop_on_sigterm()
    if mode == "worker":
        return _worker(args)
    if mode == "web":
        return _web(args)
    if mode == "find_capacity":
        return _capacity(args)
    return _headless(args, mode)

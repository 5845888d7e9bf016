"""Locust load for a transcription backend: each user streams fixtures, session after session.

Run it through ``harness load`` (which starts the reference server, writes a run directory and
judges SLOs), or directly::

    locust -f harness/load/locustfile.py --host http://127.0.0.1:8700 --harness-api-key KEY

A user runs one whole session per task with the sync driver (``harness.drivers.sync_driver``, the
same codec and session logic as every other suite): create, connect, stream the fixture at real
time, finalize, wait for the pipeline and the close. It then fires one Locust ``request`` event
per measurement, named after the step (``session_create``, ``connect``, ``first_partial``,
``final`` per segment, ``finalize``, ``pipeline``), and a failure for a session that ended in
error (``session``) or, with the scripted engine, lost or duplicated any word (``words``). The
raw, unrounded samples also go to ``samples-<pid>.jsonl`` (``--harness-samples-dir``), which is
what SLOs are judged on. Settings: ``harness.load.settings.OPTIONS`` (flags or environment).
"""

from __future__ import annotations

import gc
import itertools
import logging
import os
import re
import threading
import time
from typing import Any

import httpx
from locust import User, constant, events, task
from locust.exception import StopUser

from harness.load.client import LoadSessionClient, SessionSpec
from harness.load.measure import SessionMeta, session_lines
from harness.load.samples import SampleWriter
from harness.load.settings import OPTIONS, LoadSettings, SettingsError
from harness.protocols.base import StreamTarget
from harness.protocols.registry import get_codec
from harness.safety import require_loopback
from harness.errors import BackendError

log = logging.getLogger("harness.load")
STREAMING_GC_THRESHOLDS = (2000, 1, 1_000_000)  # see _gc_for_streaming
logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per request would swamp the log


class LoadFailure(BackendError):
    """What Locust shows in its failures table: why, with ids and numbers masked so that one kind
    of failure is one row (the raw samples keep the exact text)."""

    def __init__(self, error: str) -> None:
        text = re.sub(r"session [0-9a-f][0-9a-f-]{7,}", "session …", error)
        super().__init__(re.sub(r"\d+(\.\d+)?", "N", text)[:200])


@events.init_command_line_parser.add_listener
def _add_arguments(parser) -> None:  # type: ignore[no-untyped-def]
    for opt in OPTIONS:
        kwargs = {"type": opt.type} if opt.type is not str else {}
        # The API key is a secret: the web UI masks it.
        extra = {"is_secret": True} if "api-key" in opt.flag else {}
        parser.add_argument(opt.flag, env_var=opt.env, default=opt.default, help=opt.help, **kwargs, **extra)


class _Process:
    """Per-process state, made once on first use (after Locust's ``--processes`` fork)."""

    lock = threading.Lock()
    settings: LoadSettings | None = None
    specs: list[SessionSpec] = []
    writer: SampleWriter | None = None
    http: httpx.Client | None = None
    counter = itertools.count()
    deadline: float | None = None  # wall clock after which users start no new session

    @classmethod
    def setup(cls, environment) -> LoadSettings:  # type: ignore[no-untyped-def]
        with cls.lock:
            if cls.settings is None:
                settings = LoadSettings.from_options(environment.parsed_options, environment.host, dict(os.environ))
                require_loopback(settings.host, settings.allow_remote)
                fixtures = settings.resolve_fixtures()
                cls.specs = [SessionSpec.build(f, settings.engine, settings.loops, settings.script,
                                               settings.chunk_ms, settings.pace) for f in fixtures]
                cls.writer = SampleWriter(settings.samples_dir) if settings.samples_dir else None
                # One HTTP client per process: building one per session costs an SSL context each,
                # CPU that would show up as pacing error at a few hundred users.
                cls.http = httpx.Client(trust_env=False, limits=httpx.Limits(max_connections=None,
                                                                            max_keepalive_connections=100))
                cls.settings = settings
                _gc_for_streaming()
            return cls.settings

    @classmethod
    def close(cls) -> None:
        with cls.lock:
            if cls.writer is not None:
                cls.writer.close()
            if cls.http is not None:
                cls.http.close()
            cls.writer = cls.http = None
            cls.settings = None


def _gc_for_streaming() -> None:
    """Keep the cyclic garbage collector from pausing every stream at once.

    A collection stops the event loop for as long as it walks its generations: a full one walks
    every live object, with a few hundred open sessions' histories 100-300 ms during which no
    audio goes out (pacing error). Sessions free their histories by reference counting
    (``LoadSessionClient.release``), so young collections suffice: the start-up objects are
    frozen out of the collector's sight and full collections are put off. The young generations
    stay small too: the middle one holds what survived the youngest since its own last pass, and
    with (10000, 50) that grew to ~500k history objects, a 180 ms stop of every stream about 39 s
    into each 200-stream run. (2000, 1) walks at most a few thousand objects at a time, well
    under a millisecond, for about the same total work.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*STREAMING_GC_THRESHOLDS)


@events.test_start.add_listener
def _check_settings(environment, **_kw) -> None:  # type: ignore[no-untyped-def]
    """Refuse a bad setting before any user runs (the master and every worker check)."""
    if environment.parsed_options is None:
        return
    try:
        settings = _Process.setup(environment)
    except (SettingsError, ValueError, OSError) as exc:
        log.error("harness load: %s", exc)
        environment.process_exit_code = 2
        if environment.runner is not None:
            environment.runner.quit()
        return
    _Process.deadline = time.time() + settings.duration_s if settings.duration_s else None


@events.quitting.add_listener
def _close(environment, **_kw) -> None:  # type: ignore[no-untyped-def]
    _Process.close()


class TranscriptionUser(User):
    """One real-time stream at a time: a session per task, fixtures in turn."""

    wait_time = constant(0)  # the think time comes from the settings, slept at the end of a task

    def on_start(self) -> None:
        try:
            self.settings = _Process.setup(self.environment)
        except (SettingsError, ValueError, OSError) as exc:
            log.error("harness load: %s", exc)
            raise StopUser() from exc
        self.number = next(_Process.counter)
        runner = self.environment.runner
        if runner is not None and runner.user_count > self.settings.max_users:
            log.error("harness load: %d users in this process exceeds the cap of %d; stopping the extra user",
                      runner.user_count, self.settings.max_users)
            raise StopUser()
        self.codec_name = self.settings.protocol
        get_codec(self.codec_name)  # an unknown protocol fails here, naming the known ones
        self.target = StreamTarget(self.settings.host, self.settings.api_key)
        self.sessions = 0
        self.client: LoadSessionClient | None = None

    @task
    def stream_session(self) -> None:
        if _Process.deadline is not None and time.time() >= _Process.deadline:
            # Past the load's duration: idle until Locust stops the user, so that no session is
            # running while Locust does its own stop work (it stalls the event loop for a while).
            self._sleep(1.0)
            return
        spec = _Process.specs[(self.number + self.sessions) % len(_Process.specs)]
        self.sessions += 1
        client = LoadSessionClient(get_codec(self.codec_name), self.target,
                                   spec.plan(self.settings.allow_remote, seed=self.number * 100_003 + self.sessions),
                                   http=_Process.http)
        self.client = client
        try:
            outcome = client.run()
        except BaseException:
            # Stopped mid-session (GreenletExit). Its samples are written, flagged, but neither
            # counted nor judged: Locust's stop work stalls the event loop just before it kills
            # users, so what those sessions measured last is the generator's delay, not the backend's.
            # Done here, not in the thread: the greenlet is being killed and must not wait.
            _write_session(client, spec.meta(self.number), completed=False, error=None, interrupted=True)
            raise
        finally:
            self.client = None
        self._record(client, spec, completed=outcome.completed, error=outcome.error)
        del outcome
        if self.settings.think_s:
            self._sleep(self.settings.think_s)

    def _sleep(self, seconds: float) -> None:
        import gevent

        gevent.sleep(seconds)

    def _record(self, client: LoadSessionClient, spec: SessionSpec, *, completed: bool, error: str | None) -> None:
        # On the event loop: a few ms a session. A thread for it (and a shorter GIL switch
        # interval) measured no better at 200 streams: the event loop then waited for the GIL.
        lines = _write_session(client, spec.meta(self.number), completed=completed, error=error, interrupted=False)
        fire = self.environment.events.request.fire
        for line in lines:
            if line["kind"] == "request":
                fire(request_type=line["type"], name=line["name"], response_time=line["ms"], response_length=0,
                     exception=None, context={"session": line["session"]})
            elif line["kind"] == "failure":
                fire(request_type=line["type"], name=line["name"], response_time=line["ms"], response_length=0,
                     exception=LoadFailure(line["error"]), context={"session": line["session"]})

    def on_stop(self) -> None:
        if self.__dict__.get("client") is not None:
            self.client.close_gracefully()  # type: ignore[union-attr]


def _write_session(client: LoadSessionClient, meta: SessionMeta, *, completed: bool, error: str | None,
                   interrupted: bool) -> list[dict[str, Any]]:
    """A finished session's sample lines, appended to the samples file; then its state is freed."""
    try:
        lines = session_lines(client.history, meta, completed=completed, error=error, interrupted=interrupted,
                              reconnects=client.core.reconnects, pacing_ms=client.pacing_errors_ms)
        if _Process.writer is not None:
            _Process.writer.write(lines)
        return lines
    finally:
        client.release()

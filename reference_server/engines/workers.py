"""PocketSphinx decoding in worker processes, so one server decodes on every core.

The pocketsphinx binding holds the GIL while it decodes (and for the ~0.3 s it takes to build a
decoder), so in-process decoding uses one core and stalls the event loop. Here each worker process
hosts many engines by id and keeps its own prewarmed ``DecoderPool``; the server talks to it over
one pipe per worker. A ``ProcessEngine`` proxy implements the Engine interface by sending a request
and waiting for the reply; the wait is a blocking read, which releases the GIL.

- Workers are started with the "spawn" context: the server has threads, and forking a threaded
  process can copy a held lock into the child.
- A session's engine lives on one worker for its life, chosen least-loaded first.
- One request is in flight per worker at a time (a per-worker lock around send + receive);
  requests for different engines on one worker simply queue.
- A worker that dies (or does not answer within ``request_timeout_s``) makes the proxy raise a
  RuntimeError naming the worker and the engine; the stream layer closes 1011 and the client
  resumes. The next new engine gets a fresh worker in that slot.
- Workers exit when the server does: on a "stop" request, on pipe EOF, or when their parent
  process changes (the server was killed).
"""

from __future__ import annotations

import atexit
import itertools
import multiprocessing
import os
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from .base import EngineConfig, EngineResult
from .validate import check_config, check_pcm

DEFAULT_PREWARM = 2  # spare decoders each worker keeps ready
DEFAULT_REQUEST_TIMEOUT_S = 30.0  # a request this slow means the worker is stuck: it is killed
START_TIMEOUT_S = 60.0  # spawn + import + first decoder; generous on a loaded 2-core machine
PARENT_CHECK_S = 1.0  # how often an idle worker checks that the server is still there


# -- the worker process ----------------------------------------------------------------------


def _worker_main(conn: Connection, prewarm: int, parent_pid: int) -> None:
    """Serve engine requests until told to stop, the pipe closes, or the parent goes away.

    Requests are ``(op, engine_id, arg)``; replies ``("ok", value)`` or ``("err", exception)``.
    Spare decoders are built only while no request is waiting, so a build never sits in front
    of one that is already queued.
    """
    from .decoder_pool import DecoderPool
    from .pocketsphinx_engine import PocketSphinxEngine

    pool = DecoderPool(max_idle=max(prewarm, 1))
    if prewarm > 0:
        pool.prewarm(1)
    engines: dict[int, PocketSphinxEngine] = {}
    conn.send(("ok", os.getpid()))
    try:
        while True:
            if not conn.poll(0):
                if pool.idle() < prewarm:
                    pool.prewarm(pool.idle() + 1)
                    continue
                if not conn.poll(PARENT_CHECK_S):
                    if os.getppid() != parent_pid:
                        return  # the server died without telling us
                    continue
            try:
                op, engine_id, arg = conn.recv()
            except (EOFError, OSError):
                return  # the server closed the pipe (or died)
            if op == "stop":
                return
            try:
                if op == "create":
                    engines[engine_id] = PocketSphinxEngine(arg, pool=pool)
                    value: Any = None
                elif op == "accept":
                    value = engines[engine_id].accept(arg)
                elif op == "flush":
                    value = engines[engine_id].flush()
                elif op == "spares":
                    value = pool.idle()
                elif op == "close":
                    engine = engines.pop(engine_id, None)
                    value = engine.close() if engine is not None else None
                else:
                    raise ValueError(f"unknown engine worker request {op!r}")
                reply: tuple[str, Any] = ("ok", value)
            except KeyError:
                reply = ("err", RuntimeError(f"engine {engine_id} is not open on worker pid {os.getpid()}"))
            except Exception as exc:  # noqa: BLE001 - the caller re-raises it
                reply = ("err", exc)
            try:
                conn.send(reply)
            except (BrokenPipeError, OSError):
                return
            except Exception as exc:  # noqa: BLE001 - an exception that does not pickle
                conn.send(("err", RuntimeError(f"{type(exc).__name__} in engine worker: {exc}")))
    finally:
        for engine in engines.values():
            engine.close()


# -- the server side -------------------------------------------------------------------------


class WorkerDied(RuntimeError):
    """The worker hosting an engine died or stopped answering."""


class _Worker:
    """One worker process and the server's end of its pipe."""

    def __init__(self, index: int, generation: int, prewarm: int, request_timeout_s: float) -> None:
        self.index = index
        self.generation = generation
        self.request_timeout_s = request_timeout_s
        self.engines = 0  # live engines assigned here (the pool's lock guards it)
        self.dead: str | None = None  # why it is no longer usable
        self._lock = threading.Lock()  # one request in flight
        ctx = multiprocessing.get_context("spawn")
        self._conn, child_conn = ctx.Pipe(duplex=True)
        self.process = ctx.Process(target=_worker_main, args=(child_conn, prewarm, os.getpid()),
                                   name=f"engine-worker-{index}", daemon=True)
        self.process.start()
        child_conn.close()  # so the child's death shows up here as EOF
        self._ready = False

    @property
    def label(self) -> str:
        return f"engine worker {self.index} (pid {self.process.pid})"

    def request(self, op: str, engine_id: int, arg: Any = None) -> Any:
        """Send one request and wait for its reply. Raises WorkerDied if the worker is gone or
        stuck, and re-raises the engine's own exceptions (e.g. ValueError for bad audio)."""
        if not self._lock.acquire(timeout=self.request_timeout_s + START_TIMEOUT_S):
            raise self._fail(op, engine_id, "its request queue did not move")
        try:
            if self.dead:
                raise WorkerDied(f"{self.label} is gone ({self.dead}); engine {engine_id} is lost")
            if not self._ready:
                self._await_ready(engine_id)
            try:
                self._conn.send((op, engine_id, arg))
                if not self._conn.poll(self.request_timeout_s):
                    raise self._fail(op, engine_id, f"no reply within {self.request_timeout_s:g} s")
                status, value = self._conn.recv()
            except (EOFError, OSError) as exc:
                raise self._fail(op, engine_id, f"it died ({self._exit_text()})") from exc
        finally:
            self._lock.release()
        if status == "err":
            raise value
        return value

    def _await_ready(self, engine_id: int) -> None:
        try:
            if not self._conn.poll(START_TIMEOUT_S):
                raise self._fail("start", engine_id, f"not ready within {START_TIMEOUT_S:g} s")
            status, value = self._conn.recv()
        except (EOFError, OSError) as exc:
            raise self._fail("start", engine_id, f"it died while starting ({self._exit_text()})") from exc
        if status != "ok":
            raise self._fail("start", engine_id, f"it failed to start: {value!r}")
        self._ready = True

    def wait_ready(self) -> None:
        """Block until the worker has loaded the model (used by prewarm)."""
        with self._lock:
            if not self._ready and not self.dead:
                self._await_ready(-1)

    def _fail(self, op: str, engine_id: int, why: str) -> WorkerDied:
        self.dead = why
        self.kill()
        return WorkerDied(f"{self.label} failed during {op} of engine {engine_id}: {why}")

    def _exit_text(self) -> str:
        self.process.join(timeout=1.0)
        code = self.process.exitcode
        if code is None:
            return "still running"
        return f"killed by signal {-code}" if code < 0 else f"exit code {code}"

    def alive(self) -> bool:
        return self.dead is None and self.process.is_alive()

    def stop(self, timeout_s: float = 3.0) -> None:
        """Ask the worker to stop; kill it if it does not."""
        if self.dead is None:
            self.dead = "stopped"
            if self._lock.acquire(timeout=timeout_s):
                try:
                    self._conn.send(("stop", 0, None))
                except (OSError, EOFError):
                    pass
                finally:
                    self._lock.release()
        self.process.join(timeout=timeout_s)
        self.kill()

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=5.0)
        try:
            self._conn.close()
        except OSError:
            pass


@dataclass
class PoolStats:
    workers: int
    alive: int
    engines: list[int]  # live engines per worker slot
    restarts: int


class WorkerPool:
    """``size`` worker processes, started lazily (or by ``start``), restarted when found dead."""

    def __init__(self, size: int, prewarm: int = DEFAULT_PREWARM,
                 request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S) -> None:
        if size < 1:
            raise ValueError(f"engine worker pool size must be >= 1, got {size!r}")
        if prewarm < 0:
            raise ValueError(f"prewarm must be >= 0, got {prewarm!r}")
        self.size = size
        self.prewarm = prewarm
        self.request_timeout_s = request_timeout_s
        self._slots: list[_Worker | None] = [None] * size
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._generations = itertools.count(1)
        self._closed = False
        self.restarts = 0

    def start(self, wait_for_spares: bool = False) -> None:
        """Start every worker and wait until each has its model loaded (and, if asked, all its
        spare decoders built: benchmarks want that, a server need not wait for it)."""
        with self._lock:
            workers = [self._slot(i) for i in range(self.size)]
        for worker in workers:
            worker.wait_ready()
        deadline = time.monotonic() + START_TIMEOUT_S
        for worker in workers if wait_for_spares else ():
            while worker.request("spares", 0) < self.prewarm and time.monotonic() < deadline:
                time.sleep(0.1)

    def create(self, config: EngineConfig) -> ProcessEngine:
        """A new pocketsphinx engine on the least-loaded worker (ValueError for a bad config)."""
        check_config(config)
        with self._lock:
            if self._closed:
                raise RuntimeError("the engine worker pool is shut down")
            candidates = [self._slot(i) for i in range(self.size)]
            worker = min(candidates, key=lambda w: w.engines)
            worker.engines += 1
            engine_id = next(self._ids)
        engine = ProcessEngine(self, worker, engine_id)
        try:
            worker.request("create", engine_id, config)
        except BaseException:
            self._release(worker)
            raise
        return engine

    def _slot(self, index: int) -> _Worker:
        """The live worker in slot ``index``, started (again) if needed. Caller holds the lock."""
        worker = self._slots[index]
        if worker is not None and worker.alive():
            return worker
        if worker is not None:
            worker.kill()
            self.restarts += 1
        worker = _Worker(index, next(self._generations), self.prewarm, self.request_timeout_s)
        self._slots[index] = worker
        return worker

    def _release(self, worker: _Worker) -> None:
        with self._lock:
            worker.engines = max(0, worker.engines - 1)

    def stats(self) -> PoolStats:
        with self._lock:
            return PoolStats(
                workers=self.size,
                alive=sum(1 for w in self._slots if w is not None and w.alive()),
                engines=[w.engines if w is not None else 0 for w in self._slots],
                restarts=self.restarts,
            )

    def pids(self) -> list[int]:
        with self._lock:
            return [w.process.pid for w in self._slots if w is not None and w.process.pid is not None]

    def shutdown(self) -> None:
        """Stop every worker (idempotent). Engines still open fail with a clear error afterwards."""
        with self._lock:
            self._closed = True
            workers = [w for w in self._slots if w is not None]
            self._slots = [None] * self.size
        for worker in workers:
            worker.stop()


class ProcessEngine:
    """The Engine interface for one stream, decoded on a worker process."""

    name = "pocketsphinx"

    def __init__(self, pool: WorkerPool, worker: _Worker, engine_id: int) -> None:
        self._pool = pool
        self._worker = worker
        self.engine_id = engine_id
        self._closed = False

    @property
    def worker_pid(self) -> int | None:
        return self._worker.process.pid

    @property
    def worker_index(self) -> int:
        return self._worker.index

    def accept(self, pcm: bytes) -> list[EngineResult]:
        self._check_open()
        check_pcm(pcm)  # here too, so bad input is the caller's ValueError, not a round trip
        return self._worker.request("accept", self.engine_id, bytes(pcm))

    def flush(self) -> list[EngineResult]:
        self._check_open()
        return self._worker.request("flush", self.engine_id)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._pool._release(self._worker)
        if self._worker.alive():
            try:
                self._worker.request("close", self.engine_id)
            except WorkerDied:
                pass  # nothing left to release

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"{self.name} engine {self.engine_id} is closed")


# -- the process-wide pool -------------------------------------------------------------------

_pool: WorkerPool | None = None
_pool_lock = threading.Lock()


def configure(workers: int, prewarm: int = DEFAULT_PREWARM) -> WorkerPool | None:
    """Decode pocketsphinx streams on ``workers`` processes (0: in-process, the previous pool is
    shut down). Workers start on first use or ``active_pool().start()``."""
    global _pool
    if workers < 0:
        raise ValueError(f"engine workers must be >= 0, got {workers!r}")
    with _pool_lock:
        old, _pool = _pool, (WorkerPool(workers, prewarm=prewarm) if workers else None)
    if old is not None:
        old.shutdown()
    return _pool


def active_pool() -> WorkerPool | None:
    return _pool


def shutdown() -> None:
    """Stop the process-wide pool's workers (safe to call twice)."""
    configure(0)


atexit.register(shutdown)


def wait_for_exit(pids: list[int], timeout_s: float) -> list[int]:
    """The pids still running after up to ``timeout_s`` (bounded polling; for tests and tools)."""
    deadline = time.monotonic() + timeout_s
    remaining = list(pids)
    while remaining and time.monotonic() < deadline:
        remaining = [pid for pid in remaining if _running(pid)]
        if remaining:
            time.sleep(0.05)
    return remaining


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped by its parent) counts as gone.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False

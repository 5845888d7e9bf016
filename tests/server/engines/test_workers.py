"""PocketSphinx decoding in worker processes: same results as in-process, engines kept apart,
a killed worker reported clearly and replaced, no processes left behind, and the real server
transcribing through its workers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import wave
from pathlib import Path

import jiwer
import psutil
import pytest

from reference_server.engines import EngineConfig, FinalResult, create_engine
from reference_server.engines import workers
from reference_server.engines.decoder_pool import DecoderPool
from reference_server.engines.pocketsphinx_engine import PocketSphinxEngine
from reference_server.engines.workers import WorkerPool, wait_for_exit

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "audio"
CHUNK = 3200  # 100 ms


def _utterances() -> list[tuple[bytes, str]]:
    manifest = FIXTURES / "manifest.json"
    if not manifest.exists():
        pytest.skip(f"{manifest} is missing: run `harness fixtures`")
    chosen = [f for f in json.loads(manifest.read_text())["fixtures"]
              if f["kind"] == "utterance" and f.get("voice") == "rms"][:2]
    if len(chosen) < 2:
        pytest.skip("the fixture manifest has fewer than two rms utterances")
    out = []
    for entry in chosen:
        with wave.open(str(FIXTURES / entry["file"])) as wav:
            out.append((wav.readframes(wav.getnframes()), entry["text"]))
    return out


@pytest.fixture(scope="module")
def utterances() -> list[tuple[bytes, str]]:
    return _utterances()


@pytest.fixture(scope="module")
def pool():
    """Two workers, one spare decoder each; shut down (and checked gone) at the end."""
    pool = WorkerPool(2, prewarm=1)
    pool.start()
    yield pool
    pids = pool.pids()
    pool.shutdown()
    assert wait_for_exit(pids, 10.0) == []


def decode(engine, pcm: bytes) -> list:
    results = []
    for i in range(0, len(pcm), CHUNK):
        results += engine.accept(pcm[i : i + CHUNK])
    results += engine.flush()
    return results


def finals(results: list) -> list[FinalResult]:
    return [r for r in results if isinstance(r, FinalResult)]


def test_proxy_gives_the_in_process_results(pool: WorkerPool, utterances) -> None:
    pcm, _ = utterances[0]
    local = PocketSphinxEngine(EngineConfig(), pool=DecoderPool(max_idle=1))
    try:
        expected = decode(local, pcm)
    finally:
        local.close()
    remote = pool.create(EngineConfig())
    try:
        got = decode(remote, pcm)
    finally:
        remote.close()
    assert finals(expected), "the fixture should give at least one final"
    assert finals(got) == finals(expected)  # words, times, confidences and boundaries alike
    assert got == expected  # partials too


def test_engines_sharing_a_worker_do_not_mix(pool: WorkerPool, utterances) -> None:
    (pcm_a, text_a), (pcm_b, text_b) = utterances
    a, b, c = (pool.create(EngineConfig()) for _ in range(3))
    try:
        # Least-loaded first: the third engine goes back to the first engine's worker.
        assert a.worker_pid != b.worker_pid
        assert c.worker_pid == a.worker_pid
        assert pool.stats().engines == [2, 1]
        out_a, out_c = [], []
        for i in range(0, max(len(pcm_a), len(pcm_b)), CHUNK):  # interleaved, chunk by chunk
            if i < len(pcm_a):
                out_a += a.accept(pcm_a[i : i + CHUNK])
            if i < len(pcm_b):
                out_c += c.accept(pcm_b[i : i + CHUNK])
        out_a += a.flush()
        out_c += c.flush()
    finally:
        for engine in (a, b, c):
            engine.close()
    assert pool.stats().engines == [0, 0]
    alone_a = pool.create(EngineConfig())
    try:
        assert finals(out_a) == finals(decode(alone_a, pcm_a))
    finally:
        alone_a.close()
    assert jiwer.wer(text_a.lower(), " ".join(f.text for f in finals(out_a))) < 0.3
    assert jiwer.wer(text_b.lower(), " ".join(f.text for f in finals(out_c))) < 0.3


def test_bad_input_is_the_callers_error(pool: WorkerPool) -> None:
    with pytest.raises(ValueError, match="start_offset"):
        pool.create(EngineConfig(start_offset=3))
    engine = pool.create(EngineConfig())
    try:
        with pytest.raises(ValueError, match="even length"):
            engine.accept(b"\0\0\0")
        assert engine.accept(b"\0\0" * 1600) == []  # and the engine goes on
    finally:
        engine.close()
    with pytest.raises(RuntimeError, match="closed"):
        engine.accept(b"\0\0")


def test_a_killed_worker_is_reported_and_replaced(pool: WorkerPool, utterances) -> None:
    pcm, text = utterances[0]
    doomed = pool.create(EngineConfig())
    doomed.accept(pcm[:CHUNK])
    os.kill(doomed.worker_pid, signal.SIGKILL)
    with pytest.raises(RuntimeError) as info:
        doomed.accept(pcm[CHUNK : 2 * CHUNK])
    message = str(info.value)
    assert f"engine worker {doomed.worker_index} (pid {doomed.worker_pid})" in message
    assert f"engine {doomed.engine_id}" in message and "signal 9" in message
    with pytest.raises(RuntimeError, match="gone"):  # it stays failed; it does not hang
        doomed.flush()
    doomed.close()  # safe on a dead worker
    # New engines get a fresh worker in the dead one's slot.
    fresh = [pool.create(EngineConfig()) for _ in range(2)]
    try:
        assert doomed.worker_pid not in {e.worker_pid for e in fresh}
        assert pool.stats().restarts == 1 and pool.stats().alive == 2
        for engine in fresh:
            assert jiwer.wer(text.lower(), " ".join(f.text for f in finals(decode(engine, pcm)))) < 0.3
    finally:
        for engine in fresh:
            engine.close()


def test_create_engine_uses_the_configured_pool(utterances) -> None:
    assert workers.active_pool() is None
    workers.configure(1, prewarm=0)
    try:
        engine = create_engine("pocketsphinx", EngineConfig())
        assert isinstance(engine, workers.ProcessEngine)
        engine.close()
        scripted = create_engine("scripted", EngineConfig(script="a b"))
        assert not isinstance(scripted, workers.ProcessEngine)  # cheap: stays in-process
        pids = workers.active_pool().pids()
    finally:
        workers.shutdown()
    assert workers.active_pool() is None
    assert wait_for_exit(pids, 10.0) == []


WORKERS_OF_A_KILLED_PARENT = """
import sys, time
from reference_server.engines.workers import WorkerPool
pool = WorkerPool(2, prewarm=0)
pool.start()
print(" ".join(map(str, pool.pids())), flush=True)
time.sleep(60)
"""


def test_workers_exit_when_their_parent_is_killed() -> None:
    parent = subprocess.Popen([sys.executable, "-c", WORKERS_OF_A_KILLED_PARENT],
                              stdout=subprocess.PIPE, text=True)
    try:
        pids = [int(p) for p in parent.stdout.readline().split()]
        assert len(pids) == 2 and all(psutil.pid_exists(p) for p in pids)
    finally:
        parent.kill()
        parent.wait(timeout=10)
    assert wait_for_exit(pids, 10.0) == []


FIXTURE = FIXTURES / "meeting-01-rms.wav"
TEXT = "we need to send the report to the client by friday"


async def _transcribe(api, pcm: bytes) -> list[str]:
    r = await api.http.post("/v1/sessions", json={"sample_rate": 16000})  # the server's default engine
    assert r.status_code == 201, r.text
    s = r.json()
    st = await api.stream(s["session_id"], s["token"])
    await st.recv()
    end = await st.send_audio(pcm, chunk=3200)
    await st.acked(end, timeout=30)
    await st.send_json({"type": "finalize"})
    assert (await st.drain_until_closed(timeout=60)).code == 1000
    return st.final_words()


def _worker_processes(server_pid: int) -> list[psutil.Process]:
    return [c for c in psutil.Process(server_pid).children() if "spawn_main" in " ".join(c.cmdline())]


async def test_server_transcribes_through_two_workers_and_survives_losing_them(start_ref_server) -> None:
    from srv_client import Api

    if not FIXTURE.exists():
        pytest.skip(f"{FIXTURE} is missing: run `harness fixtures`")
    with wave.open(str(FIXTURE)) as w:
        pcm = w.readframes(w.getnframes())
    srv = start_ref_server(engine="pocketsphinx", extra_args=("--engine-workers", "2"))
    api = Api(srv.url, srv.api_key)
    try:
        assert jiwer.wer(TEXT, " ".join(await _transcribe(api, pcm)).lower()) < 0.3
        assert len(_worker_processes(srv.pid)) == 2

        # Workers killed under a live stream: the stream closes 1011 and says why.
        r = await api.http.post("/v1/sessions", json={"sample_rate": 16000})
        s = r.json()
        st = await api.stream(s["session_id"], s["token"])
        await st.recv()
        half = len(pcm) // 2 // 3200 * 3200
        await st.send_audio(pcm[:half], chunk=3200)
        await st.recv_until(lambda m: m["type"] == "partial", timeout=30)  # its engine is open
        for proc in _worker_processes(srv.pid):
            proc.kill()
        await st.send_audio(pcm[half:], start=half, chunk=3200)
        assert (await st.drain_until_closed(timeout=30)).code == 1011
        assert any("engine failed" in e.get("message", "") for e in st.of_type("error")), st.of_type("error")

        # A new session gets fresh workers and the whole text.
        assert jiwer.wer(TEXT, " ".join(await _transcribe(api, pcm)).lower()) < 0.3
        children = psutil.Process(srv.pid).children()
    finally:
        await api.aclose()
    child_pids = [c.pid for c in children]
    assert srv.stop() == 0
    assert wait_for_exit(child_pids, 10.0) == []

"""Containers through a real engine: readiness waits that name what they waited for, the server's
life cycle (attach, kill, start, stop, pause), every docker fault's effect and its fault window,
and the image build's pieces."""

from __future__ import annotations

import asyncio
import re
import uuid

import httpx
import pytest

from harness.containers import faults as dfaults
from harness.containers import image as img
from harness.containers.ready import HttpStatus, LogLine, NotReady, PortOpen, wait_ready
from harness.containers.server import LABEL, ContainerError, ContainerServer
from harness.history import History
from harness.services import free_port


def health(server: ContainerServer) -> int | str:
    try:
        return httpx.get(f"{server.url}/health", headers=server.auth_headers(), timeout=2.0).status_code
    except httpx.HTTPError as exc:
        return type(exc).__name__


@pytest.fixture
def sleeper(engine, base_image):
    """A container that prints one line and then does nothing (no server on any port)."""
    c = engine.containers.run(base_image, ["sh", "-c", "echo hello from the sleeper; sleep 60"], detach=True,
                              labels={LABEL: "1"})
    try:
        yield c
    finally:
        c.remove(force=True)


# --- readiness ------------------------------------------------------------------------------
def test_waits_time_out_naming_what_they_waited_for(sleeper):
    port = free_port()
    assert wait_ready(sleeper, "127.0.0.1", port, [LogLine("hello from the sleeper")], timeout_s=20) >= 0
    with pytest.raises(NotReady, match=r"waited for the port to accept a TCP connection on 127\.0\.0\.1:\d+") as exc:
        wait_ready(sleeper, "127.0.0.1", port, [PortOpen()], timeout_s=0.5)
    assert "hello from the sleeper" in str(exc.value)  # the container's log tail comes along
    with pytest.raises(NotReady, match="waited for a log line matching 'never printed'"):
        wait_ready(sleeper, "127.0.0.1", port, [LogLine("never printed")], timeout_s=0.5)
    with pytest.raises(NotReady, match="waited for GET /health to answer 200"):
        wait_ready(sleeper, "127.0.0.1", port, [HttpStatus("/health", 200)], timeout_s=0.5)


def test_a_container_that_exits_is_reported_with_its_exit_code(engine, base_image):
    c = engine.containers.run(base_image, ["sh", "-c", "echo giving up; exit 3"], detach=True, labels={LABEL: "1"})
    try:
        with pytest.raises(NotReady, match="exited with code 3 while waiting for the port"):
            wait_ready(c, "127.0.0.1", free_port(), [PortOpen()], timeout_s=30)
    finally:
        c.remove(force=True)


# --- the server's life cycle -------------------------------------------------------------------
def test_server_life_cycle_matches_the_embedded_one(server):
    assert health(server) == 200 and server.proc.pid
    server.kill()
    assert server.status() == "exited" and health(server) != 200
    server.start()  # same published port, ready again
    assert health(server) == 200
    server.freeze()
    assert server.status() == "paused"
    server.thaw()
    assert server.stop(timeout_s=5) == 0  # SIGTERM: the reference server exits cleanly
    with pytest.raises(ContainerError, match="already running"):
        server.start().start()


def test_attach_finds_the_port_and_key_and_leaves_the_container(server, engine):
    attached = ContainerServer.attach(server.name)
    assert (attached.port, attached.api_key) == (server.port, server.api_key)
    attached.close()
    assert server.status() == "running"  # not ours to remove
    with pytest.raises(ContainerError, match="does not publish port 9999/tcp"):
        ContainerServer.attach(server.name, container_port=9999)
    with pytest.raises(ContainerError, match="no container named 'no-such-container"):
        ContainerServer.attach(f"no-such-container-{uuid.uuid4().hex[:6]}")


def test_missing_image_is_named(engine):
    with pytest.raises(ContainerError, match="image nothing/here:1 is not in the local image store"):
        ContainerServer.from_image("nothing/here:1")


def test_close_removes_the_container(image, engine):
    from harness.containers.server import server_args

    s = ContainerServer.from_image(image, args=server_args())
    cid = s.container.id
    s.close()
    assert not [c for c in engine.containers.list(all=True) if c.id == cid]


# --- the docker nemesis ------------------------------------------------------------------------
def test_pause_freezes_and_records_one_window(server):
    h = History()
    fault = dfaults.Pause(server, h)
    fault.start()
    assert server.status() == "paused" and h.faults[0].end_ns is None
    fault.stop()
    assert server.status() == "running" and health(server) == 200
    (w,) = h.faults
    assert (w.kind, w.target) == ("docker_pause", f"docker:{server.name}") and w.end_ns > w.start_ns


def test_kill_restart_by_the_harness_and_by_the_restart_policy(server):
    h = History()
    fault = dfaults.KillRestart(server, h)
    fault.start()
    assert server.status() == "exited"
    fault.stop()
    assert health(server) == 200
    with pytest.raises(ContainerError, match="has no restart policy"):
        dfaults.KillRestart(server, by="policy").start()
    server.container.update(restart_policy={"Name": "on-failure", "MaximumRetryCount": 3})
    by_policy = dfaults.KillRestart(server, h, by="policy")
    by_policy.start()
    by_policy.stop()  # waits for the engine to restart it
    server.container.reload()
    assert server.container.attrs["RestartCount"] >= 1 and health(server) == 200
    assert [w.params["restart"] for w in h.faults] == ["harness", "policy"]
    with pytest.raises(ValueError, match="by='later'"):
        dfaults.KillRestart(server, by="later")


def test_stop_with_grace_records_the_exit_code(server):
    fault = dfaults.StopGrace(server, grace_s=5)
    (w,) = fault.start()
    assert server.status() == "exited" and w.params["exit_code"] == 0
    fault.stop()
    assert health(server) == 200 and w.end_ns is not None


def test_network_disconnect_darkens_the_port_until_reconnected(server):
    fault = dfaults.NetworkDisconnect(server)
    fault.start()
    assert health(server) != 200
    fault.stop()
    assert health(server) == 200


def test_update_limits_while_running_and_restores_them(server):
    fault = dfaults.UpdateLimits(server, cpus=0.25, memory_mb=200)
    fault.start()
    server.container.reload()
    host = server.container.attrs["HostConfig"]
    assert (host["CpuQuota"], host["CpuPeriod"], host["Memory"]) == (25_000, 100_000, 200 * 1024 * 1024)
    assert health(server) == 200
    fault.stop()
    server.container.reload()
    host = server.container.attrs["HostConfig"]
    assert host["CpuQuota"] in (0, -1) and host["Memory"] > 1024 ** 3
    with pytest.raises(ValueError, match="needs cpus or memory_mb"):
        dfaults.UpdateLimits(server)
    with pytest.raises(ValueError, match="at least 6"):
        dfaults.UpdateLimits(server, memory_mb=2)


def test_run_for_reverts_even_when_cancelled(server):
    async def go():
        task = asyncio.create_task(dfaults.run_for(dfaults.Pause(server), 30))
        for _ in range(200):
            if server.status() == "paused":
                break
            await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(go())
    assert server.status() == "running"


def test_a_fault_cannot_start_twice_or_stop_unstarted(server):
    fault = dfaults.Pause(server)
    with pytest.raises(ContainerError, match="was not started"):
        fault.stop()
    fault.start()
    with pytest.raises(ContainerError, match="already started"):
        fault.start()
    fault.stop()


# --- the image ---------------------------------------------------------------------------------
def test_apt_mirror_is_read_from_apt_sources(tmp_path, monkeypatch):
    deb822 = tmp_path / "debian.sources"
    deb822.write_text("Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm\n\n"
                      "Types: deb\nURIs: http://mirror.example/debian-security\n")
    assert img.apt_mirror([deb822]) == "http://mirror.example/debian"
    legacy = tmp_path / "sources.list"
    legacy.write_text("# comment\ndeb [arch=amd64] https://ftp.example.org/debian bookworm main\n")
    assert img.apt_mirror([legacy]) == "https://ftp.example.org/debian"
    assert img.apt_mirror([tmp_path / "missing.list"]) == img.DEFAULT_MIRROR


def test_server_requirements_follow_what_the_server_imports(tmp_path):
    reqs = img.server_requirements()
    names = {re.split(r"[<>=!~]", r)[0] for r in reqs}
    assert {"fastapi", "uvicorn", "websockets", "pocketsphinx", "prometheus-client", "psutil"} <= names
    assert any(r.startswith("fastapi") and ">=0.110" in r for r in reqs)  # the range the project declares
    assert not any(n in " ".join(reqs) for n in ("locust", "playwright", "matplotlib"))  # harness-only
    src = tmp_path / "srv"
    src.mkdir()
    (src / "a.py").write_text("import os\nimport numpy as np\nfrom . import b\nfrom starlette.routing import Route\n")
    assert img.server_imports(src) == {"numpy", "starlette"}
    numpy = next(r for r in reqs if r.startswith("numpy"))
    websockets = next(r for r in reqs if r.startswith("websockets"))  # uvicorn's, named by no import
    assert img.server_requirements(src) == sorted([numpy, "starlette", websockets])
    (src / "c.py").write_text("import no_such_module_anywhere\n")
    with pytest.raises(img.ImageBuildError, match="no_such_module_anywhere"):
        img.server_requirements(src)


def test_an_up_to_date_image_is_reused(image):
    report = img.build(image)
    assert "image" in report.reused and "base" in report.reused
    labels = img.engine.client().images.get(image).labels
    assert labels[img.SOURCE_HASH_LABEL] == img.source_hash()


def test_the_image_runs_the_reference_server_from_installed_wheels(engine, image):
    out = engine.containers.run(image, [], entrypoint=["/opt/server/bin/pip", "list", "--format=freeze"],
                                remove=True).decode()
    assert "transcription-harness==" in out and "pocketsphinx==" in out and "locust" not in out


def test_doctor_names_the_engine_and_the_image(image, monkeypatch):
    from harness.doctor import check_docker

    found = check_docker()
    assert found.ok and image in found.detail
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    found = check_docker()
    assert not found.ok and "/nonexistent/docker.sock does not answer" in found.detail


# --- behind the one fault interface (harness.faults.docker_faults) ------------------------------
def test_docker_faults_behind_the_fault_interface(server):
    from harness.faults.base import FaultContext, FaultError, fault_type
    from harness.faults.docker_faults import DockerKill, DockerPause, DockerUpdate

    assert fault_type("docker_pause") is DockerPause and fault_type("docker_kill") is DockerKill
    h = History()
    ctx = FaultContext([h], {"docker": server})

    async def go():
        pause = DockerPause()
        await pause.start(ctx)
        assert server.status() == "paused"
        await pause.stop()
        kill = DockerKill(down_s=0.1)
        await kill.start(ctx)  # momentary: killed and back when start returns
        assert health(server) == 200
        with pytest.raises(FaultError, match="needs the 'docker' layer"):
            await DockerPause().start(FaultContext([h], {}))
        with pytest.raises(FaultError, match="needs a server in a container"):
            await DockerPause().start(FaultContext([h], {"docker": object()}))

    asyncio.run(go())
    assert [w.kind for w in h.faults] == ["docker_pause", "docker_kill"] and all(w.end_ns for w in h.faults)
    with pytest.raises(ValueError, match="'policy'"):
        DockerKill(restart="sometimes")
    with pytest.raises(ValueError, match="needs cpus or memory_mb"):
        DockerUpdate()

"""Process faults on a real reference server (scripted engine): SIGKILL and restart, SIGSTOP and
SIGCONT, SIGTERM with streams closed 1001; each recorded as a window."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from harness.faults import process
from harness.history import History
from harness.services import ReferenceServer


@pytest.fixture(scope="module")
def server():
    with ReferenceServer(engine="scripted") as s:
        yield s


def _health(server: ReferenceServer, timeout: float = 3.0) -> httpx.Response:
    return httpx.get(f"{server.url}/health", headers=server.auth_headers(), timeout=timeout)


async def test_kill_and_restart_same_port_new_pid(server):
    history = History()
    pid = server.pid
    [window] = await process.kill_and_restart(server, history, down_s=0.1)
    assert server.pid != pid and server.is_running()
    assert _health(server).status_code == 200
    assert window.kind == "kill9" and window.end_ns > window.start_ns
    assert window.params["pid_before"] == pid and window.params["pid_after"] == server.pid


async def test_frozen_server_answers_nothing_until_thawed(server):
    history = History()
    async with process.frozen(server, history):
        with pytest.raises(httpx.TimeoutException):
            await asyncio.to_thread(_health, server, 0.5)
    assert _health(server).status_code == 200
    assert history.faults[0].kind == "freeze" and history.faults[0].end_ns is not None


async def test_thaw_runs_when_the_block_fails(server):
    with pytest.raises(RuntimeError, match="inside"):
        async with process.frozen(server):
            raise RuntimeError("inside")
    assert _health(server).status_code == 200


async def test_graceful_restart_closes_streams_1001(server):
    created = httpx.post(f"{server.url}/v1/sessions", headers=server.auth_headers(),
                         json={"engine": "scripted", "script": "a b c"}, timeout=5).json()
    ws_url = f"{server.ws_url}/v1/stream?session_id={created['session_id']}"
    async with connect(ws_url, additional_headers=server.auth_headers(), proxy=None) as ws:
        assert '"ready"' in await asyncio.wait_for(ws.recv(), 5)
        history = History()
        restart = asyncio.create_task(process.graceful_restart(server, history))
        with pytest.raises(ConnectionClosed):
            while True:
                await asyncio.wait_for(ws.recv(), 10)
        [window] = await restart
    assert ws.close_code == 1001
    assert window.kind == "sigterm_restart" and window.params["exit_code"] == 0
    assert _health(server).status_code == 200


async def test_refuses_a_server_it_did_not_start():
    with pytest.raises(process.ProcessFaultError, match="--target"):
        await process.kill_and_restart(None)  # type: ignore[arg-type]
    stopped = ReferenceServer(engine="scripted")
    with pytest.raises(process.ProcessFaultError, match="not running"):
        await process.freeze(stopped, 0.1)
    stopped.close()

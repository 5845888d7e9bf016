"""The server restarted in the middle of a recording: the page must reconnect to the server that
comes back on the same port, resume where the server's durable record ends, and finish with the
whole transcript, no word lost or doubled.

The scenario runs its own reference server (with the run's planted defects), serving the page
and the stream: killed with SIGKILL (a crash: no close frame, in-memory audio gone, only what
SQLite holds survives) or stopped with SIGTERM (streams closed with 1001), then started again.
"""

from __future__ import annotations

import asyncio

import pytest
from browser_kit import finish_after_reconnect, recorded_browser, wait_audio_sent

from harness.browser import LiveOptions

FIXTURE = "meeting-01-rms"
SCRIPT = "alpha bravo charlie delta echo foxtrot golf hotel"
HOW = {"kill-9": False, "sigterm": True}  # name -> graceful


@pytest.mark.needs("embedded_server")  # the harness restarts the server; it cannot restart a --target
@pytest.mark.catches("client-no-reconnect")
@pytest.mark.parametrize("how", list(HOW))
async def test_server_restart_mid_recording(how, scenario, chromium_for, client_config, own_server, manifest,
                                            harness_options) -> None:
    fx = manifest.get(FIXTURE)
    graceful = HOW[how]
    server = own_server(engine="scripted")
    scenario.params.update(fixture_id=FIXTURE, fault=f"server restart ({how})", layer="process", engine="scripted")
    status = client_config.status
    chromium = await chromium_for(FIXTURE)
    async with recorded_browser(scenario, chromium, client_config, server.url, name=f"restart-{how}",
                                allow_remote=harness_options.allow_remote) as run:
        c = run.client
        # Attempts every 0.1-0.5 s, enough of them to outlast the server's start-up.
        await c.open(LiveOptions(engine="scripted", script=SCRIPT, backoff_ms=100, backoff_max_ms=500,
                                 reconnect_attempts=60))
        await c.start()
        await run.step("browser.session_setup", c.wait_status(status["connected"]), "the page never connected")
        await run.step("browser.streaming", wait_audio_sent(run, 1.5), "the page did not stream audio")

        mark = len(c.statuses())
        with run.history.fault("restart", target="reference-server", signal="SIGTERM" if graceful else "SIGKILL"):
            await asyncio.to_thread(server.stop if graceful else server.kill)
            await asyncio.to_thread(server.start)
        await finish_after_reconnect(run, scenario, client_config, mark=mark, script=SCRIPT, fixture_text=fx.text,
                                     cause=f"the server restarted ({how})")
    scenario.verify()

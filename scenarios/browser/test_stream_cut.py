"""The stream cut in the middle of a recording: the page must say Reconnecting, get back to
Connected, and end with the whole transcript, no word lost or doubled.

The cut is at the network (Toxiproxy in front of the target, or Playwright's WebSocket routing
when there is no Toxiproxy; see stream_cut.py). With the scripted engine the transcript of a
clean run is known exactly from the audio sent (one script word per 300 ms of stream), so the
wire and the session page are both held to it word for word.
"""

from __future__ import annotations

import os

import pytest
from browser_kit import finish_after_reconnect, recorded_browser, wait_audio_sent
from stream_cut import RouteCut, ToxiproxyCut

from harness.browser import LiveOptions

FIXTURE = "meeting-01-rms"
SCRIPT = "alpha bravo charlie delta echo foxtrot golf hotel"
CUT_S = 1.5
CUT_ENV = "HARNESS_BROWSER_CUT"  # "route" forces Playwright's routing even with Toxiproxy present


def scripted() -> LiveOptions:
    # Short backoffs so the page comes back within a second of the link; plenty of attempts.
    return LiveOptions(engine="scripted", script=SCRIPT, backoff_ms=100, backoff_max_ms=500, reconnect_attempts=30)


@pytest.mark.catches("client-no-reconnect")
async def test_stream_cut_mid_recording(scenario, chromium_for, client_config, target, toxiproxy, manifest,
                                        harness_options) -> None:
    fx = manifest.get(FIXTURE)
    api_url, _why = toxiproxy
    # A page at an absolute address would not be loaded through the proxy: route its sockets instead.
    use_route = os.environ.get(CUT_ENV) == "route" or api_url is None or "://" in client_config.path
    cutter = await (RouteCut(target.http_url) if use_route else ToxiproxyCut(api_url, target.http_url)).open()
    scenario.params.update(fixture_id=FIXTURE, fault="stream cut", layer=cutter.layer, cut_s=CUT_S,
                           engine="scripted" if client_config.query_options else "default")
    status = client_config.status
    chromium = await chromium_for(FIXTURE)
    try:
        async with recorded_browser(scenario, chromium, client_config, cutter.base_url, name="cut",
                                    allow_remote=harness_options.allow_remote) as run:
            c = run.client
            await cutter.install(run)
            await c.open(scripted())
            await c.start()
            await run.step("browser.session_setup", c.wait_status(status["connected"]), "the page never connected")
            await run.step("browser.streaming", wait_audio_sent(run, 1.5), "the page did not stream audio")

            mark = len(c.statuses())
            await cutter.cut(CUT_S, run.history)
            await finish_after_reconnect(run, scenario, client_config, mark=mark, script=SCRIPT,
                                         fixture_text=fx.text, cause="the stream was cut")
    finally:
        await cutter.close()
    scenario.verify()

"""Microphone permission denied: the page says so in plain words and streams nothing.

Its own Chromium, launched without the flag that accepts the permission prompt and with no
permission granted, so getUserMedia is refused as when a user clicks "Block".
"""

from __future__ import annotations

import asyncio

import browser_checks as bc
from browser_kit import recorded_browser

from harness.browser import LiveOptions

FIXTURE = "meeting-01-rms"
SETTLE_S = 1.0  # after the error, no stream may open late


async def test_microphone_denied(scenario, chromium_for, client_config, base_url, harness_options) -> None:
    scenario.params.update(fixture_id=FIXTURE, microphone="denied")
    chromium = await chromium_for(FIXTURE, microphone=False)
    async with recorded_browser(scenario, chromium, client_config, base_url, name="denied",
                                allow_remote=harness_options.allow_remote) as run:
        c = run.client
        await c.open(LiveOptions(engine="scripted", script="alpha bravo"))
        await c.start()
        error = await run.step("browser.microphone_denied", c.wait_error(timeout_s=15),
                               "the page showed no error when the microphone was denied")
        await asyncio.sleep(SETTLE_S)
        await run.screenshot("screenshot")
        run.check(bc.microphone_denied(error, await c.status(), len(run.browser.sockets),
                                       len(run.browser.audio_frames()), client_config, run.who))
        run.check(bc.console(run.browser.console, run.who))
    scenario.verify()

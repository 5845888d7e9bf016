"""The whole recording flow as a user sees it, on real speech through PocketSphinx.

Chromium's fake microphone plays a fixture; the scenario presses Start and checks: the session
is set up (Start -> Connected) within 3 s, chunks are counted, the fixture's words appear on
screen (WER against the fixture's text), Stop opens the session page with all four results, what
the pages show is what the server sent, the pipeline events arrived in order, and nothing was
logged as a console error along the way.
"""

from __future__ import annotations

import time

import browser_checks as bc
import pytest
from browser_kit import recorded_browser, setup_ms, wait_audio_sent

from harness.browser import LiveOptions
from harness.checks import accuracy, lifecycle

FIXTURE = "meeting-01-rms"
MAX_WER = 0.35  # flite speech through the browser's resampler and PocketSphinx's generic model
SETUP_LIMIT_MS = 3000.0


@pytest.mark.catches("console-error")
async def test_recording_flow(scenario, chromium_for, client_config, base_url, manifest, harness_options) -> None:
    fx = manifest.get(FIXTURE)
    scenario.params.update(fixture_id=FIXTURE, engine="pocketsphinx")
    status = client_config.status
    chromium = await chromium_for(FIXTURE)
    async with recorded_browser(scenario, chromium, client_config, base_url, name="flow",
                                allow_remote=harness_options.allow_remote) as run:
        c = run.client
        run.history.meta.update(fixture_id=FIXTURE, expected_text=fx.text, speech_onset_s=fx.speech_onset_s)
        await c.open(LiveOptions(engine="pocketsphinx"))
        t_start = time.monotonic_ns()
        await c.start()
        await run.step("browser.session_setup", c.wait_status(status["connected"], timeout_s=15),
                       "the page never showed Connected after Start")
        run.check(bc.session_setup(setup_ms(c, t_start, status["connected"]), run.who, SETUP_LIMIT_MS))

        # The whole fixture (speech and its trailing pause) goes out, and words reach the screen.
        await run.step("browser.streaming", wait_audio_sent(run, fx.duration_s, timeout_s=30),
                       f"the page did not stream the fixture's {fx.duration_s:.1f} s of audio")
        await run.step("browser.live_transcript", c.wait_finals(1, timeout_s=30), "no final transcript appeared on the page")
        await run.screenshot("live")
        run.check(bc.chunks(await c.chunks(), run.sync_history(), run.who))

        await c.stop()
        await run.step("browser.session_page", c.wait_session_page(timeout_s=60),
                       "Stop did not lead to the session page")
        results = await run.step("browser.session_page", c.wait_results(timeout_s=30),
                                 "the session page did not show every pipeline result")
        await run.screenshot("screenshot")

        h = run.sync_history()
        shown = await c.session_finals()
        run.check(bc.session_page(results, run.who))
        run.check(bc.screen_matches_wire(shown, h, run.who, "the session page"))
        run.check(accuracy.wer(h, fx.text, max_wer=MAX_WER))
        run.check(lifecycle.pipeline_events(h))
        run.check(bc.console(run.browser.console, run.who))
        for v in bc.latencies(h, client_config, run.who, speech=True):
            run.check(v)
        run.check(bc.success(h, scenario.verdicts))
    scenario.verify()

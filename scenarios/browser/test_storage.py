"""Nothing of a session is left in the browser: localStorage, sessionStorage and IndexedDB are
read while recording (once finals are on screen), on the session page, and on a fresh recording
page opened afterwards in the same browser profile. A transcript is health data; a shared or
stolen device must not give it away."""

from __future__ import annotations

import browser_checks as bc
import pytest
from browser_kit import recorded_browser

from harness.browser import LiveOptions

FIXTURE = "meeting-01-rms"
SCRIPT = "patient reports chest pain since monday"


@pytest.mark.catches("phi-in-localstorage")
async def test_nothing_in_browser_storage(scenario, chromium_for, client_config, base_url, harness_options) -> None:
    scenario.params.update(fixture_id=FIXTURE, engine="scripted" if client_config.query_options else "default")
    status = client_config.status
    chromium = await chromium_for(FIXTURE)
    async with recorded_browser(scenario, chromium, client_config, base_url, name="storage",
                                allow_remote=harness_options.allow_remote) as run:
        c = run.client
        snapshots = []
        # Two words a segment: finals (what a leaky page would store) within a second.
        await c.open(LiveOptions(engine="scripted", script=SCRIPT, metadata={"script_segment_words": 2}))
        await c.start()
        await run.step("browser.session_setup", c.wait_status(status["connected"]), "the page never connected")
        await run.step("browser.live_transcript", c.wait_finals(2, timeout_s=30), "no final transcript appeared on the page")
        snapshots.append(("while recording", await run.browser.storage()))
        await run.screenshot("live")

        await c.stop()
        await run.step("browser.session_page", c.wait_session_page(), "Stop did not lead to the session page")
        await run.step("browser.session_page", c.wait_results(), "the session page did not show every result")
        snapshots.append(("on the session page", await run.browser.storage()))
        await run.screenshot("screenshot")

        await c.open()  # a new recording page in the same profile: nothing carried over
        snapshots.append(("on a new recording page afterwards", await run.browser.storage()))

        h = run.sync_history()
        run.check(bc.storage(snapshots, run.who, transcript=h.transcript() or SCRIPT))
        run.check(bc.console(run.browser.console, run.who))
        for v in bc.latencies(h, client_config, run.who):
            run.check(v)
        run.check(bc.success(h, scenario.verdicts))
    scenario.verify()

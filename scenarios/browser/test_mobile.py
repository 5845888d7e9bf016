"""The recording flow on a phone: an iPhone-sized viewport with touch and a mobile user agent.

The controls (start, stop, status, chunk counter) must be visible and inside the screen's width
with no sideways scrolling, on the recording page and on the session page; and the flow must
work by tapping: Connected, words on screen, Stop, the session page with every result.
"""

from __future__ import annotations

import browser_checks as bc
from browser_kit import recorded_browser

from harness.browser import LiveOptions

FIXTURE = "meeting-01-rms"
DEVICE = "iPhone 13"
SCRIPT = "alpha bravo charlie delta echo"
CONTROLS = ("start", "stop", "status", "chunks")


async def layout_verdict(run, names: dict[str, str], where: str):
    page = run.browser.page
    boxes = {}
    for name, selector in names.items():
        loc = page.locator(selector).first
        boxes[name] = await loc.bounding_box() if await loc.count() and await loc.is_visible() else None
    scroll_width = await page.evaluate("() => document.documentElement.scrollWidth")
    return bc.layout(boxes, page.viewport_size, scroll_width, run.who, where)


async def test_mobile_viewport(scenario, chromium_for, client_config, base_url, harness_options) -> None:
    scenario.params.update(fixture_id=FIXTURE, device=DEVICE)
    status, sel = client_config.status, client_config.selectors
    chromium = await chromium_for(FIXTURE)
    async with recorded_browser(scenario, chromium, client_config, base_url, name="mobile", device=DEVICE,
                                allow_remote=harness_options.allow_remote) as run:
        c = run.client
        await c.open(LiveOptions(engine="scripted", script=SCRIPT, metadata={"script_segment_words": 2}))
        run.check(await layout_verdict(run, {k: sel[k] for k in CONTROLS}, "the recording page"))
        await c.start(tap=True)
        await run.step("browser.session_setup", c.wait_status(status["connected"]), "the page never connected")
        await run.step("browser.live_transcript", c.wait_finals(2, timeout_s=30), "no final transcript appeared on the page")
        await run.screenshot("live")

        await c.stop(tap=True)
        await run.step("browser.session_page", c.wait_session_page(), "tapping Stop did not lead to the session page")
        results = await run.step("browser.session_page", c.wait_results(), "the session page did not show every result")
        await run.screenshot("screenshot")
        sp = client_config.session_page
        run.check(await layout_verdict(run, {s: sp.result.replace("{step}", s) for s in sp.steps}, "the session page"))
        run.check(bc.session_page(results, run.who))
        h = run.sync_history()
        run.check(bc.screen_matches_wire(await c.session_finals(), h, run.who, "the session page"))
        run.check(bc.console(run.browser.console, run.who))
        for v in bc.latencies(h, client_config, run.who):
            run.check(v)
        run.check(bc.success(h, scenario.verdicts))
    scenario.verify()

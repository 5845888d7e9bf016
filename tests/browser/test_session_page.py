"""The session page reveals each pipeline result when its event arrives, not all at the end."""

from __future__ import annotations

import httpx

from harness.browser import BrowserSession, LiveOptions, LivePage


async def test_results_are_revealed_step_by_step(shared_chromium, shared_server, tmp_path) -> None:
    server = shared_server
    async with BrowserSession(chromium=shared_chromium, artifacts_dir=tmp_path, name="reveal") as browser:
        live = LivePage(browser, server.url)
        # The pipeline holds at the tasks step; the page stops waiting for it after 1 s and
        # opens the session page, which keeps polling.
        await live.open(LiveOptions(engine="scripted", script="we need to ship the fix by friday",
                                    metadata={"hold_step": "tasks", "script_segment_words": 8},
                                    pipeline_timeout_s=1))
        await live.start()
        await live.wait_finals(1)
        session_id = await live.stop_and_wait_for_view()
        page = browser.page

        await page.wait_for_selector("[data-result='analytics']")
        assert await page.get_attribute("[data-result='refinement']", "data-state") == "ready"
        assert await page.locator("[data-result='tasks'], [data-result='summary']").count() == 0
        assert await page.locator("[data-step='tasks'] .pending").is_visible()
        assert await page.get_attribute("#sessionState", "data-state") == "processing"
        await browser.screenshot("held")

        async with httpx.AsyncClient() as client:
            r = await client.post(f"{server.url}/debug/release/{session_id}", headers=server.auth_headers())
            assert r.status_code == 200, r.text
        assert await live.wait_results() == dict.fromkeys(LivePage.STEPS, "ready")
        await page.wait_for_selector("body[data-state='completed']")
        assert "ship the fix" in (await page.text_content("[data-result='tasks']") or "").lower()
        assert browser.errors == []

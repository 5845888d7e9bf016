"""The page's planted defects show the symptom a browser scenario must catch."""

from __future__ import annotations

from harness.browser import BrowserSession, LiveOptions, LivePage

SCRIPT = "alpha bravo charlie delta echo"


async def test_planted_phi_in_localstorage_and_console_error(shared_chromium, start_server, tmp_path) -> None:
    server = start_server(engine="scripted", defects=("phi-in-localstorage", "console-error"))
    async with BrowserSession(chromium=shared_chromium, artifacts_dir=tmp_path, name="defects") as browser:
        live = LivePage(browser, server.url)
        await live.open(LiveOptions(engine="scripted", script=SCRIPT, metadata={"script_segment_words": 1}))
        await live.start()
        await live.wait_finals(1)
        await live.stop_and_wait_for_view()
        await live.wait_results()

        stored = (await browser.storage())["localStorage"]
        assert "alpha" in " ".join(stored.values())  # the transcript persisted in the browser
        assert any("Recorder teardown failed" in e.text for e in browser.errors)

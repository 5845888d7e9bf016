"""The recording flow end to end: real Chromium, real reference server with PocketSphinx, flite speech."""

from __future__ import annotations

import re

from harness.browser import BrowserSession, LivePage


def words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


async def test_record_stop_and_see_the_session_page(shared_chromium, speech_text, start_server, tmp_path) -> None:
    server = start_server(engine="pocketsphinx")
    async with BrowserSession(chromium=shared_chromium, artifacts_dir=tmp_path, name="flow") as browser:
        live = LivePage(browser, server.url)
        await live.open()
        assert await live.status() == "Offline"

        await live.start()
        await live.wait_status("Connected")
        chunks = await live.wait_chunks(50, timeout_s=30)  # 5 s: all of the speech and most of the pause
        live_finals = await live.wait_finals(1, timeout_s=30)
        await browser.screenshot("live")
        assert len(browser.audio_frames()) >= chunks  # the counter counts frames that really went out

        session_id = await live.stop_and_wait_for_view()
        results = await live.wait_results()
        assert results == dict.fromkeys(LivePage.STEPS, "ready")
        await browser.page.wait_for_selector("body[data-state='completed']")
        await browser.screenshot("session")

        # The speech was recognized: most of the sentence's words are on the session page.
        view_finals = await live.finals()
        assert view_finals[: len(live_finals)] == live_finals
        heard = set(words(" ".join(view_finals)))
        assert len(heard & set(words(speech_text))) >= 5, f"transcript {view_finals!r} vs {speech_text!r}"
        refined = await browser.page.text_content("[data-result='refinement']")
        assert set(words(refined or "")) & heard

        # The wire: one stream, audio contiguous from offset 0 in 100 ms frames, then finalize.
        frames = browser.audio_frames()
        offsets = [f.offset for f in frames]
        assert offsets[0] == 0
        assert all(b == a + f.size - 8 for a, b, f in zip(offsets, offsets[1:], frames))
        assert all(f.size == 8 + 3200 for f in frames[:-1])
        sent = browser.messages("sent")
        assert sent[-1] == {"type": "finalize"}
        assert len(browser.sockets) == 1 and f"session_id={session_id}" in browser.sockets[0].url
        assert "access_token=REDACTED" in browser.sockets[0].url
        events = [m["name"] for m in browser.messages(type_="event")]
        assert events[0] == "session_finalized" and "summary_ready" in events

        # Clean: no console errors, and nothing of the session left in browser storage.
        assert browser.errors == []
        assert await browser.storage() == {"localStorage": {}, "sessionStorage": {}, "indexedDB": []}

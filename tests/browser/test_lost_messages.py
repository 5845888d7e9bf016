"""Lost messages on a live stream: the page notices and repairs them (stream through a fault proxy)."""

from __future__ import annotations

from harness.browser import BrowserSession, LiveOptions, LivePage
from harness.faults.wsproxy import DOWNSTREAM, UPSTREAM, Drop, Match, WsFaultProxy

SCRIPT = "alpha bravo charlie delta echo foxtrot golf"
WORD_BYTES = 9600


def expected_words(total_bytes: int) -> list[str]:
    script = SCRIPT.split()
    return [script[i % len(script)] for i in range(total_bytes // WORD_BYTES)]


async def record_through(proxy: WsFaultProxy, browser: BrowserSession, server, chunks: int) -> LivePage:
    live = LivePage(browser, server.url)
    # Two words (600 ms) per segment, so finals come quickly.
    await live.open(LiveOptions(engine="scripted", script=SCRIPT, metadata={"script_segment_words": 2},
                                backoff_ms=100, stream_origin=proxy.ws_url))
    await live.start()
    await live.wait_status("Connected")
    await live.wait_chunks(chunks)
    return live


async def stop(live: LivePage) -> None:
    await live.stop_and_wait_for_view()
    await live.wait_results()


async def test_a_lost_audio_frame_is_resent_from_the_gap(shared_chromium, shared_server, tmp_path) -> None:
    server = shared_server
    async with WsFaultProxy(server.ws_url) as proxy, BrowserSession(
        chromium=shared_chromium, artifacts_dir=tmp_path, name="audio-gap"
    ) as browser:
        proxy.add(Drop(UPSTREAM, Match(kind="binary", nth=6)))  # the server never gets frame 6
        live = await record_through(proxy, browser, server, chunks=20)
        await stop(live)

        gaps = browser.messages(type_="error")
        assert [g["code"] for g in gaps][:1] == ["audio_gap"], gaps
        expected_offset = gaps[0]["expected_offset"]
        assert expected_offset == 5 * 3200  # frames 1-5 arrived
        resent = [f for f in browser.audio_frames() if f.offset == expected_offset]
        assert len(resent) == 2  # the lost one, and the resend after audio_gap
        total = max(f.offset + f.size - 8 for f in browser.audio_frames())
        assert " ".join(await live.finals()).split() == expected_words(total)
        assert len(browser.sockets) == 1  # repaired on the same connection


async def test_a_lost_final_is_replayed_after_a_reconnect(shared_chromium, shared_server, tmp_path) -> None:
    server = shared_server
    async with WsFaultProxy(server.ws_url) as proxy, BrowserSession(
        chromium=shared_chromium, artifacts_dir=tmp_path, name="lost-final"
    ) as browser:
        proxy.add(Drop(DOWNSTREAM, Match(kind="final", nth=1)))  # segment 0 never reaches the page
        live = await record_through(proxy, browser, server, chunks=15)  # 1.5 s: segments 0 and 1
        await live.wait_finals(2)

        # Segment 1 arrived without 0: the page reconnected asking for everything after -1, and
        # the replayed segment 0 is on screen, in its place.
        assert len(browser.sockets) == 2
        assert "last_segment_id=-1" in browser.sockets[1].url
        ids = [int(x) for x in await browser.page.eval_on_selector_all(
            "#finals [data-segment-id]", "els => els.map(e => e.dataset.segmentId)")]
        assert ids[:2] == [0, 1] and ids == list(range(len(ids)))
        on_screen = " ".join(await live.finals()).split()
        assert on_screen == expected_words(len(on_screen) * WORD_BYTES)

        await stop(live)
        total = max(f.offset + f.size - 8 for f in browser.audio_frames())
        assert " ".join(await live.finals()).split() == expected_words(total)

"""The /live page when things go wrong: a restarted server, a dead server, a denied microphone."""

from __future__ import annotations

import asyncio

from harness.browser import BrowserSession, LiveOptions, LivePage

SCRIPT = "alpha bravo charlie delta echo foxtrot golf"
WORD_BYTES = 9600  # 300 ms per scripted word at 16 kHz s16le


def scripted(**kwargs) -> LiveOptions:
    return LiveOptions(engine="scripted", script=SCRIPT, **kwargs)


async def restart_while_recording(live: LivePage, server) -> None:
    """SIGTERM the server mid-recording (streams close with 1001) and start it again on the same port."""
    restart = asyncio.create_task(asyncio.to_thread(server.restart))
    try:
        await live.wait_status("Reconnecting", timeout_s=15)
    finally:
        await restart


async def test_reconnects_and_resumes_with_nothing_lost_or_doubled(shared_chromium, start_server, tmp_path) -> None:
    server = start_server(engine="scripted")
    async with BrowserSession(chromium=shared_chromium, artifacts_dir=tmp_path, name="reconnect") as browser:
        live = LivePage(browser, server.url)
        await live.open(scripted(backoff_ms=100))
        await live.start()
        await live.wait_status("Connected")
        before = await live.wait_chunks(15)

        await restart_while_recording(live, server)
        await live.wait_status("Connected", timeout_s=20)
        await live.wait_chunks(before + 15, timeout_s=20)
        await live.stop_and_wait_for_view()
        await live.wait_results()

        # Two streams got `ready` (attempts while the server was down were refused); the second
        # resumed exactly where its ready said.
        opened = sorted({f.socket for f in browser.frames if f.direction == "received"})
        assert len(opened) == 2
        assert "last_segment_id=" in browser.sockets[opened[1]].url
        second = [f for f in browser.frames if f.socket == opened[1]]
        ready = next(f.json() for f in second if f.kind == "text" and f.direction == "received")
        assert ready["type"] == "ready"
        first_audio = next(f for f in second if f.kind == "binary" and f.direction == "sent")
        assert first_audio.offset == ready["committed_offset"]

        # The transcript is exactly the script for the audio sent: nothing lost, nothing doubled.
        total = max(f.offset + f.size - 8 for f in browser.audio_frames())
        script = SCRIPT.split()
        expected = [script[i % len(script)] for i in range(total // WORD_BYTES)]
        transcript = " ".join(await live.finals()).split()
        assert transcript == expected
        # Chromium itself logs each refused attempt while the server was down; the page logs nothing.
        assert [e.text for e in browser.errors if "ERR_CONNECTION_REFUSED" not in e.text] == []


async def test_planted_no_reconnect_goes_offline_and_stays_there(shared_chromium, start_server, tmp_path) -> None:
    server = start_server(engine="scripted", defects=("client-no-reconnect",))
    async with BrowserSession(chromium=shared_chromium, artifacts_dir=tmp_path, name="no-reconnect") as browser:
        live = LivePage(browser, server.url)
        await live.open(scripted(backoff_ms=100, backoff_max_ms=200))
        await live.start()
        await live.wait_status("Connected")
        await live.wait_chunks(5)

        await asyncio.to_thread(server.stop)  # closes the stream with 1001: "reconnect and resume"
        await live.wait_status("Offline")
        await asyncio.sleep(1.0)  # a healthy page says Reconnecting and tries every 0.1-0.2 s
        assert await live.status() == "Offline"
        assert len(browser.sockets) == 1
        assert await live.error() == ""  # and it does not even say why


async def test_gives_up_saying_the_server_is_unreachable(shared_chromium, start_server, tmp_path) -> None:
    server = start_server(engine="scripted")
    async with BrowserSession(chromium=shared_chromium, artifacts_dir=tmp_path, name="unreachable") as browser:
        live = LivePage(browser, server.url)
        await live.open(scripted(reconnect_attempts=2, backoff_ms=100, backoff_max_ms=200))
        await live.start()
        await live.wait_status("Connected")

        await asyncio.to_thread(server.stop)
        error = await live.wait_error()
        assert error.startswith("The server is unreachable")
        assert await live.status() == "Offline"
        assert len(browser.sockets) == 3  # the first stream and two attempts, then no more
        assert await browser.page.is_enabled("#startRecordingBtn")


async def test_microphone_denied_is_said_plainly(chromium, speech_wav, shared_server, tmp_path) -> None:
    server = shared_server
    # Its own Chromium: without the flag that accepts the prompt, and no permission granted.
    async with BrowserSession(fake_audio=speech_wav, microphone=False, artifacts_dir=tmp_path, name="denied") as browser:
        live = LivePage(browser, server.url)
        await live.open(scripted())
        await live.start()
        error = await live.wait_error()
        assert error.startswith("Microphone access was denied")
        assert await live.status() == "Offline"
        assert browser.sockets == []  # no session was opened without a microphone
        assert browser.errors == []


async def test_buffer_overflow_while_offline_is_announced_and_the_stream_stays_contiguous(
    shared_chromium, start_server, tmp_path
) -> None:
    server = start_server(engine="scripted")
    async with BrowserSession(chromium=shared_chromium, artifacts_dir=tmp_path, name="overflow") as browser:
        live = LivePage(browser, server.url)
        await live.open(scripted(max_buffer_s=1, backoff_ms=200, backoff_max_ms=400, reconnect_attempts=30))
        await live.start()
        await live.wait_status("Connected")
        await live.wait_chunks(10)

        await asyncio.to_thread(server.kill)  # a crash: no close frame, in-memory audio gone
        await browser.page.wait_for_selector("#warning:not([hidden])", timeout=15_000)
        warning = await browser.page.text_content("#warning")
        assert "discarded" in warning and "1.0 s buffer" in warning
        await browser.screenshot("overflow")

        await asyncio.to_thread(server.start)
        await live.wait_status("Connected", timeout_s=20)
        await live.stop_and_wait_for_view()
        await live.wait_results()

        # What the bound forced out was resent as silence: the server saw every offset once, so
        # the scripted transcript still has one word per 300 ms of stream, in order.
        total = max(f.offset + f.size - 8 for f in browser.audio_frames())
        script = SCRIPT.split()
        assert " ".join(await live.finals()).split() == [script[i % len(script)] for i in range(total // WORD_BYTES)]

"""BrowserSession's record: console (errors apart), WebSocket frames, storage, trace on failure."""

from __future__ import annotations

import json

import pytest
from websockets.asyncio.server import serve

from harness.browser import BrowserSession


async def test_console_errors_are_kept_apart(shared_chromium, static_url) -> None:
    async with BrowserSession(chromium=shared_chromium, trace=False) as browser:
        await browser.page.goto(f"{static_url}/blank")
        await browser.page.evaluate("""() => {
            console.log('just saying');
            console.error('something broke');
            setTimeout(() => { null.boom; }, 0);
        }""")
        await browser.page.wait_for_timeout(200)
        assert [c.type for c in browser.errors] == ["error", "pageerror"]
        assert "something broke" in browser.errors[0].text
        assert any(c.type == "log" and c.text == "just saying" for c in browser.console)


async def test_storage_of_every_kind_is_read(shared_chromium, static_url) -> None:
    async with BrowserSession(chromium=shared_chromium, trace=False) as browser:
        await browser.page.goto(f"{static_url}/blank")
        assert await browser.storage() == {"localStorage": {}, "sessionStorage": {}, "indexedDB": []}
        await browser.page.evaluate("""() => new Promise((resolve) => {
            localStorage.setItem('transcript', 'hello there');
            sessionStorage.setItem('token', 'abc');
            indexedDB.open('audio-cache').onsuccess = () => resolve();
        })""")
        assert await browser.storage() == {
            "localStorage": {"transcript": "hello there"},
            "sessionStorage": {"token": "abc"},
            "indexedDB": ["audio-cache"],
        }


async def test_websocket_frames_are_logged_with_audio_summarized(shared_chromium, static_url) -> None:
    async def echo(ws) -> None:
        async for message in ws:
            await ws.send(message)

    async with serve(echo, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        async with BrowserSession(chromium=shared_chromium, trace=False) as browser:
            await browser.page.goto(f"{static_url}/blank")
            await browser.page.evaluate("""(url) => new Promise((resolve) => {
                const ws = new WebSocket(url);
                ws.binaryType = 'arraybuffer';
                let answers = 0;
                ws.onopen = () => {
                    const frame = new Uint8Array(8 + 3200);
                    new DataView(frame.buffer).setBigUint64(0, 9600n, true);
                    ws.send(frame);
                    ws.send(JSON.stringify({type: 'finalize'}));
                };
                ws.onmessage = () => { if (++answers === 2) { ws.close(); resolve(); } };
            })""", f"ws://127.0.0.1:{port}/v1/stream?session_id=s1&access_token=secret")
            await browser.page.wait_for_timeout(100)

    assert len(browser.sockets) == 1
    assert browser.sockets[0].url.endswith("session_id=s1&access_token=REDACTED")
    sent_audio = browser.audio_frames()
    assert [(f.offset, f.size) for f in sent_audio] == [(9600, 3208)]
    assert browser.messages("sent") == [{"type": "finalize"}]
    received = [(f.kind, f.offset) for f in browser.frames if f.direction == "received"]
    assert received == [("binary", 9600), ("text", None)]


async def test_trace_and_logs_are_saved_when_the_scenario_fails(shared_chromium, static_url, tmp_path) -> None:
    with pytest.raises(RuntimeError, match="scenario broke"):
        async with BrowserSession(chromium=shared_chromium, artifacts_dir=tmp_path, name="broken") as browser:
            await browser.page.goto(f"{static_url}/blank")
            await browser.screenshot()
            raise RuntimeError("scenario broke")
    assert browser.failed == "RuntimeError: scenario broke"
    assert set(browser.artifacts) == {"screenshot", "trace", "console", "websocket"}
    assert (tmp_path / "broken-trace.zip").stat().st_size > 0
    assert json.loads((tmp_path / "broken-websocket.json").read_text()) == {"sockets": [], "frames": []}

    async with BrowserSession(chromium=shared_chromium, artifacts_dir=tmp_path, name="fine") as browser:
        await browser.page.goto(f"{static_url}/blank")
    assert not (tmp_path / "fine-trace.zip").exists()  # a passing scenario keeps no trace
    assert (tmp_path / "fine-console.json").exists()

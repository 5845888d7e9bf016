"""A small client for the server tests: HTTP calls, stream connections, scripted audio.

Written from PROTOCOL.md, independently of the harness's codecs, so these tests check the server
against the document rather than against another piece of this project.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import httpx
import websockets

WORD_MS = 300
WORD_BYTES = WORD_MS * 32  # 9,600 bytes per scripted word at 16 kHz s16le
SCRIPT = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima"


def frame(offset: int, pcm: bytes) -> bytes:
    return offset.to_bytes(8, "little") + pcm


def silence(n_bytes: int) -> bytes:
    return b"\x00" * n_bytes


def expected_words(n_words: int, script: str = SCRIPT, first: int = 0) -> list[str]:
    words = script.split()
    return [words[i % len(words)] for i in range(first, first + n_words)]


@dataclass
class Closed:
    code: int | None
    reason: str


@dataclass
class Stream:
    """A v1 stream connection that keeps every message it received."""

    ws: Any
    messages: list[dict[str, Any]] = field(default_factory=list)
    closed: Closed | None = None

    async def recv(self, timeout: float = 10.0) -> dict[str, Any]:
        raw = await asyncio.wait_for(self.ws.recv(), timeout)
        msg = json.loads(raw)
        self.messages.append(msg)
        return msg

    async def recv_until(self, pred, timeout: float = 10.0) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                msg = await self.recv(timeout)
                if pred(msg):
                    return msg

    async def acked(self, offset: int, timeout: float = 10.0) -> None:
        """Until an ack (already received or coming) reports received_offset == offset."""
        if any(a["received_offset"] == offset for a in self.of_type("ack")):
            return
        await self.recv_until(lambda m: m["type"] == "ack" and m["received_offset"] == offset, timeout)

    async def drain_until_closed(self, timeout: float = 15.0) -> Closed:
        """Read everything until the server closes; returns the close code and reason."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    await self.recv(timeout)
        except websockets.ConnectionClosed:
            pass
        self.closed = Closed(self.ws.close_code, self.ws.close_reason or "")
        return self.closed

    async def send_audio(self, pcm: bytes, start: int = 0, chunk: int = 3200) -> int:
        offset = start
        for i in range(0, len(pcm), chunk):
            piece = pcm[i:i + chunk]
            await self.ws.send(frame(offset, piece))
            offset += len(piece)
        return offset

    async def send_json(self, obj: Any) -> None:
        await self.ws.send(json.dumps(obj))

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m.get("type") == kind]

    def final_words(self) -> list[str]:
        seen: dict[int, dict[str, Any]] = {}
        for m in self.of_type("final"):
            seen.setdefault(m["segment_id"], m)
        return [w for k in sorted(seen) for w in seen[k]["text"].split()]

    def event_names(self) -> list[str]:
        return [m["name"] for m in self.of_type("event")]

    async def close(self) -> None:
        await self.ws.close()


class Api:
    """HTTP calls with the API key; each returns the httpx response."""

    def __init__(self, base_url: str, api_key: str) -> None:
        self.base_url = base_url
        self.api_key = api_key
        self.http = httpx.AsyncClient(base_url=base_url, headers={"Authorization": f"Bearer {api_key}"},
                                      timeout=15.0)

    async def aclose(self) -> None:
        await self.http.aclose()

    async def create(self, script: str = SCRIPT, **body: Any) -> dict[str, Any]:
        payload = {"engine": "scripted", "sample_rate": 16000, "script": script, **body}
        r = await self.http.post("/v1/sessions", json=payload)
        assert r.status_code == 201, r.text
        return r.json()

    async def get(self, session_id: str) -> dict[str, Any]:
        r = await self.http.get(f"/v1/sessions/{session_id}")
        assert r.status_code == 200, r.text
        return r.json()

    async def finalize(self, session_id: str) -> httpx.Response:
        return await self.http.post(f"/v1/sessions/{session_id}/finalize")

    async def wait_state(self, session_id: str, states: tuple[str, ...] = ("completed", "failed"),
                         timeout: float = 15.0) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                body = await self.get(session_id)
                if body["state"] in states:
                    return body
                await asyncio.sleep(0.05)

    def ws_url(self, session_id: str, **query: Any) -> str:
        base = self.base_url.replace("http://", "ws://", 1)
        extra = "".join(f"&{k}={v}" for k, v in query.items())
        return f"{base}/v1/stream?session_id={session_id}{extra}"

    async def stream(self, session_id: str, credential: str | None = None, *, via_query: bool = False,
                     **query: Any) -> Stream:
        credential = credential or self.api_key
        headers = {}
        if via_query:
            query["access_token"] = credential
        else:
            headers["Authorization"] = f"Bearer {credential}"
        ws = await websockets.connect(self.ws_url(session_id, **query), additional_headers=headers,
                                      open_timeout=10, close_timeout=2, max_size=None)
        return Stream(ws)


PIPELINE_ORDER = [
    "session_finalized",
    "refinement_started", "refinement_ready",
    "analytics_started", "analytics_ready",
    "tasks_started", "tasks_ready",
    "summary_started", "summary_ready",
    "post_transcription_reveal", "dashboard_refresh",
]

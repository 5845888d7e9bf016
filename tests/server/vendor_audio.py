"""Test audio for the vendor endpoints: a committed flite fixture, converted by SoX (an independent
tool, not the server's soxr and G.711 tables) to what each vendor's client would send."""

from __future__ import annotations

import asyncio
import subprocess
from typing import Any

import httpx

from harness.audio import load_manifest
from harness.services import ReferenceServer

# Two utterances, two voices, one stream: PocketSphinx's decoders carry state from one stream to
# the next, so one word in ten may change between runs; 19 words keep WER 0.15 clear of that.
FIXTURES = [load_manifest().get("meeting-02-rms"), load_manifest().get("meeting-05-slt")]
TEXT = " ".join(f.text for f in FIXTURES)
SOX_ENCODING = {"pcm_s16le": ["-e", "signed-integer", "-b", "16"], "mulaw": ["-e", "u-law", "-b", "8"],
                "alaw": ["-e", "a-law", "-b", "8"], "pcm_f32le": ["-e", "floating-point", "-b", "32"]}


def fixture_audio(encoding: str = "pcm_s16le", rate: int = 16000, *, tail_s: float = 1.0) -> bytes:
    """The fixtures, one after the other, as headerless audio at ``rate`` in ``encoding``, with ``tail_s`` of silence after."""
    cmd = ["sox", *(str(f.path) for f in FIXTURES), "-t", "raw", "-r", str(rate), *SOX_ENCODING[encoding], "-c", "1", "-L", "-",
           "pad", "0", str(tail_s)]
    return subprocess.run(cmd, check=True, capture_output=True, timeout=30).stdout


def chunks(data: bytes, size: int) -> list[bytes]:
    """``data`` cut into ``size``-byte chunks, the last one padded with silence to full size (for
    vendors that refuse short chunks); silence is 0 in PCM."""
    padded = data + b"\x00" * (-len(data) % size)
    return [padded[i:i + size] for i in range(0, len(padded), size)]


async def session_when_done(srv: ReferenceServer, session_id: str, timeout: float = 20) -> dict[str, Any]:
    """GET /v1/sessions/{id} until its pipeline has finished."""
    async with httpx.AsyncClient(base_url=srv.url, headers=srv.auth_headers(), timeout=5) as http:
        try:
            async with asyncio.timeout(timeout):
                while True:
                    body = (await http.get(f"/v1/sessions/{session_id}")).json()
                    if body["state"] in ("completed", "failed"):
                        return body
                    await asyncio.sleep(0.05)
        except TimeoutError:
            raise AssertionError(f"session {session_id} did not complete within {timeout} s") from None


async def connections(srv: ReferenceServer, **query: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=srv.url, headers=srv.auth_headers(), timeout=5) as http:
        response = await http.get("/debug/connections", params=query)
        response.raise_for_status()
        return response.json()["connections"]

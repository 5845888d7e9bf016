"""What every client driver shares: the case it runs, the audio it feeds, the record it keeps.

A driver runs one voice-agent STT client library, unchanged, against the Deepgram stand-in behind
a recording fault proxy (``Case.vendor_url``). It feeds the library a fixture WAV in real time
through the library's own streaming API (:func:`paced_audio`), and writes down what the library
delivered to the application (:class:`Recorder`): every audio chunk it was given, every final
transcript with its text and times, every error it reported. What happened on the wire (how many
connections, when, refused or not) is the proxy's record, not the driver's.

Times are ``time.monotonic_ns()``: CLOCK_MONOTONIC is one clock for every process of the machine,
so the driver's subprocess and the proxy in the harness's process agree on them.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any, Protocol

SAMPLE_RATE = 16000
CHUNK_MS = 20  # what a WebRTC or telephony track delivers per frame


@dataclass(frozen=True)
class Documented:
    """A library's documented (or, where it documents nothing, coded) behaviour under vendor
    faults, with where it says so: the expectation recorded beside each measured row."""

    reconnects: bool  # reconnects by itself after the vendor drops the connection
    retries_refusal: bool  # retries a refused handshake (429)
    keepalive: bool  # sends KeepAlive while no audio flows
    detects_stall: bool  # notices a vendor that stays connected but stops answering
    retry_delays_s: tuple[float, ...]  # the waits before its 1st, 2nd … retry
    max_attempts: int | None  # connection attempts in a row before it gives up (None: never gives up)
    source: str  # where this is written: the package, module and names


@dataclass(frozen=True)
class Case:
    """One run of a client: where the vendor is, and the audio plan."""

    case_id: str
    vendor_url: str  # ws://127.0.0.1:P (the proxy); the library adds /v1/listen itself or is given it
    api_key: str
    wav: str
    steps: list[tuple[str, float]]  # ("audio", seconds) or ("silence", seconds)
    drain_s: float = 2.0  # after the last audio, before the input ends: a caller who stopped talking
    timeout_s: float = 60.0

    @property
    def listen_url(self) -> str:
        return self.vendor_url.rstrip("/") + "/v1/listen"

    @property
    def http_url(self) -> str:
        return "http" + self.vendor_url[2:] if self.vendor_url.startswith("ws") else self.vendor_url

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Case:
        return cls(**{**data, "steps": [tuple(s) for s in data["steps"]]})


@dataclass
class Recorder:
    """Writes one JSON line per thing the library delivered (flushed at once: a driver killed at
    its deadline still leaves what it saw)."""

    case_id: str
    out: IO[str]
    secret: str = ""  # the vendor key: masked wherever a library quotes it (some quote request headers)

    def _mask(self, text: str) -> str:
        return text.replace(self.secret, "<vendor key>") if self.secret else text

    def _write(self, kind: str, **data: Any) -> None:
        self.out.write(json.dumps({"case": self.case_id, "t_ns": time.monotonic_ns(), "kind": kind, **data}) + "\n")
        self.out.flush()

    def audio(self, offset: int, length: int) -> None:
        self._write("audio", offset=offset, length=length)

    def silence(self, start_ns: int, end_ns: int) -> None:
        self._write("silence", start_ns=start_ns, end_ns=end_ns)

    def final(self, text: str, start_s: float | None = None, end_s: float | None = None) -> None:
        self._write("final", text=text, start_s=start_s, end_s=end_s)

    def error(self, message: str, recoverable: bool | None = None) -> None:
        self._write("error", message=self._mask(message)[:500], recoverable=recoverable)

    def note(self, text: str) -> None:
        self._write("note", text=self._mask(text)[:500])

    def end(self, outcome: str, detail: str = "") -> None:
        """``outcome``: "finished" (the library ended the stream itself), "gave_up" (it raised, or
        told the application it stopped), "timeout" (the driver's deadline stopped it)."""
        self._write("end", outcome=outcome, detail=self._mask(detail)[:500])


class Driver(Protocol):
    """One client library. ``run`` streams ``case`` through it and records what it delivered;
    it returns when the library has ended the stream (or raises: the batch records that)."""

    name: str
    documented: Documented

    async def run(self, case: Case, rec: Recorder) -> None: ...


def read_audio(path: str | Path, seconds: float) -> bytes:
    """``seconds`` of the fixture's 16 kHz mono PCM (repeated if the file is shorter)."""
    from harness.audio import read_pcm

    pcm = read_pcm(path, SAMPLE_RATE)
    if not pcm:
        raise ValueError(f"{path}: no audio in the fixture")
    need = int(seconds * SAMPLE_RATE) * 2
    return (pcm * (need // len(pcm) + 1))[:need]


async def paced_audio(case: Case, rec: Recorder) -> AsyncIterator[bytes]:
    """The case's audio as ``CHUNK_MS`` chunks at real time (each at its due time from the start,
    so a slow consumer does not stretch the stream), nothing during a silence. Each chunk is
    recorded as handed to the library."""
    total = sum(s for kind, s in case.steps if kind == "audio")
    pcm = read_audio(case.wav, total)
    size = SAMPLE_RATE * 2 * CHUNK_MS // 1000
    loop = asyncio.get_running_loop()
    t = loop.time()
    offset = 0
    for kind, seconds in case.steps:
        if kind == "silence":
            start = time.monotonic_ns()
            t += seconds
            await asyncio.sleep(max(0.0, t - loop.time()))
            rec.silence(start, time.monotonic_ns())
            continue
        if kind != "audio":
            raise ValueError(f"case {case.case_id}: unknown step {kind!r}; expected audio or silence")
        end = offset + int(seconds * SAMPLE_RATE) * 2
        while offset < end:
            chunk = pcm[offset:min(end, offset + size)]
            await asyncio.sleep(max(0.0, t - loop.time()))
            rec.audio(offset, len(chunk))
            yield chunk
            offset += len(chunk)
            t += len(chunk) / (SAMPLE_RATE * 2)

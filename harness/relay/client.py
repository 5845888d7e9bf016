"""The client end of a relay scenario: stream a shaped session through the service under test.

A session is a list of steps: ``Audio(seconds)`` paced in real time (``pace`` times faster),
``Silence(seconds)`` in which the client sends nothing at all (a muted microphone: no audio, no
keepalive, so only the service can keep its vendor connection alive), and ``Burst(chunks)``:
that many chunks written at once (a browser flushing the audio it captured while the socket
opened: the "concurrent first chunks" of a relay race). Then the codec's finalize message, and the
events until the service closes. Everything goes into a :class:`~harness.history.History`.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from harness.audio import chunk_bytes
from harness.drivers._common import StreamConnectError
from harness.drivers.asyncio_driver import AsyncStream, create_session, open_stream
from harness.history import History
from harness.protocols.base import Codec, SessionParams, StreamTarget
from harness.protocols.events import Closed


@dataclass(frozen=True)
class Audio:
    seconds: float


@dataclass(frozen=True)
class Silence:
    seconds: float


@dataclass(frozen=True)
class Burst:
    chunks: int


Step = Audio | Silence | Burst


@dataclass
class ClientRun:
    history: History
    bytes_sent: int = 0
    closed: Closed | None = None
    error: str | None = None
    silences: list[tuple[int, int]] = field(default_factory=list)  # (start_ns, end_ns) of each Silence
    refused_status: int | None = None  # the handshake was refused (HTTP status; None: accepted or no answer)


def steps_audio_bytes(steps: list[Step], chunk_ms: float = 100) -> int:
    size = chunk_bytes(chunk_ms)
    total = 0
    for s in steps:
        if isinstance(s, Audio):
            total += int(round(s.seconds * 1000 / chunk_ms)) * size
        elif isinstance(s, Burst):
            total += s.chunks * size
    return total


async def stream_session(codec: Codec, target: StreamTarget, steps: list[Step], *, history: History,
                         params: SessionParams, chunk_ms: float = 100, pace: float = 1.0,
                         finish_timeout_s: float = 30.0, headers: dict[str, str] | None = None) -> ClientRun:
    """Run one session; never raises for what the service does (that is in the history, a refused
    handshake as its ``connect_failed`` record). ``headers`` replace the codec's handshake headers
    (another credential, or none)."""
    run = ClientRun(history)
    size = chunk_bytes(chunk_ms)
    pcm = bytes(size)  # the scripted vendor engine counts bytes; what they hold does not matter
    session = await create_session(codec, target, params, history=history)
    try:
        stream = await open_stream(codec, target, session, history=history, headers=headers)
    except StreamConnectError as exc:
        run.error, run.refused_status = exc.error, exc.status
        history.meta["audio_bytes"] = 0
        return run
    reader = asyncio.get_running_loop().create_task(_read_until_closed(stream))
    try:
        offset = 0
        next_due = time.monotonic()
        period = chunk_ms / 1000 / pace if pace > 0 else 0.0
        for step in steps:
            if stream.closed:
                break
            if isinstance(step, Burst):
                for _ in range(step.chunks):
                    await stream.send_audio(offset, pcm)
                    offset += size
                next_due = time.monotonic() + period
            elif isinstance(step, Silence):
                start = time.monotonic_ns()
                await asyncio.sleep(step.seconds)
                run.silences.append((start, time.monotonic_ns()))
                next_due = time.monotonic()
            else:
                for _ in range(int(round(step.seconds * 1000 / chunk_ms))):
                    if stream.closed:
                        break
                    delay = next_due - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    await stream.send_audio(offset, pcm)
                    offset += size
                    next_due += period
        run.bytes_sent = offset
        if not stream.closed:
            await stream.send_control(codec.finalize_control)
        try:
            run.closed = await asyncio.wait_for(asyncio.shield(reader), timeout=finish_timeout_s)
        except TimeoutError:
            run.error = f"the service did not close the stream within {finish_timeout_s:g} s of the finalize"
    except Exception as exc:  # noqa: BLE001 - the connection broke under us: recorded, judged by the checks
        run.error = f"{type(exc).__name__}: {exc}"
    finally:
        if not reader.done():
            reader.cancel()
            stream.abort()
        learned = getattr(codec, "learned_session_id", None)
        if history.session_id is None and learned:
            history.session_id = learned
        history.meta["audio_bytes"] = run.bytes_sent
    return run


async def _read_until_closed(stream: AsyncStream) -> Closed:
    while True:
        try:
            event = await stream.recv(timeout=3600)
        except TimeoutError:
            continue
        if isinstance(event, Closed):
            return event

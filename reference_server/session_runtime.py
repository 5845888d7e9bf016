"""A session's in-memory state while it is open: offsets, pending audio, engines, locks, its stream.

The store holds what must survive a crash (state, finals, durable offset, results); this holds
what is cheap to lose (audio past the durable offset, the engine's open segment), which the client
resends after a restart because ``ready.committed_offset`` is then the durable offset.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .engines import Engine


class StreamSink(Protocol):
    """What the session layer needs from the connection currently attached to a session."""

    async def send(self, message: dict[str, Any]) -> bool: ...

    async def close(self, code: int, reason: str = "") -> None: ...

    async def ack(self) -> None: ...


@dataclass(frozen=True)
class Chunk:
    offset: int  # stream byte offset of data[0]
    data: bytes
    t_recv: float  # time.monotonic() when it was taken


class SessionRuntime:
    def __init__(self, row: dict[str, Any]) -> None:
        self.id: str = row["id"]
        self.state: str = row["state"]
        self.engine_name: str = row["engine"]
        self.script: str = row["script"]
        self.metadata: dict[str, Any] = row["metadata"]
        self.token_hash: str = row["token_hash"]
        self.created_at: float = row["created_at"]
        self.received_offset: int = row["received_offset"]  # R: taken into memory
        self.durable_offset: int = row["durable_offset"]  # D: covered by persisted finals
        self.next_segment_id: int = row["next_segment_id"]
        self.engine_base: int = row["received_offset"]  # where the next engine opened starts
        self.engines: list[Engine] = []
        self.pending: deque[Chunk] = deque()  # taken, not yet given to the engine
        self.pending_bytes = 0
        self.drained = asyncio.Event()  # set while pending_bytes is under the backpressure limit
        self.drained.set()
        self.stream: StreamSink | None = None
        self.engine_lock = asyncio.Lock()  # one engine per session: guards the open
        self.feed_lock = asyncio.Lock()  # one caller of the engine at a time (it is not thread-safe)
        self.finalize_lock = asyncio.Lock()  # the finalize path runs once
        self.attach_lock = asyncio.Lock()  # one stream attaches at a time (supersede)
        self.drain_task: asyncio.Task[None] | None = None
        self.pipeline_task: asyncio.Task[None] | None = None
        self.release = asyncio.Event()  # test hook: lets a held pipeline step start
        self.deleted = False
        self.audio_seen = False
        self.finals_emitted = 0
        # defect stream-gap: partials suppressed after the first flush until the segment ends
        self.suppress_partials = False

    def push(self, chunk: Chunk, limit: int) -> None:
        self.pending.append(chunk)
        self.pending_bytes += len(chunk.data)
        if self.pending_bytes > limit:
            self.drained.clear()

    def take_pending(self) -> list[Chunk]:
        chunks = list(self.pending)
        self.clear_pending()
        return chunks

    def clear_pending(self) -> None:
        self.pending.clear()
        self.pending_bytes = 0
        self.drained.set()

    @property
    def has_buffers(self) -> bool:
        return bool(self.engines or self.pending)

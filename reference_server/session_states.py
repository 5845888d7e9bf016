"""The session state machine of PROTOCOL.md.

``created -> streaming <-> interrupted -> finalizing -> processing -> completed | failed``, plus
``created -> finalizing`` for a session that never streamed (the zero-audio case). Everything else
is refused with ``InvalidTransition``; the caller records it with the tracker.
"""

from __future__ import annotations

CREATED = "created"
STREAMING = "streaming"
INTERRUPTED = "interrupted"
FINALIZING = "finalizing"
PROCESSING = "processing"
COMPLETED = "completed"
FAILED = "failed"

STATES: tuple[str, ...] = (CREATED, STREAMING, INTERRUPTED, FINALIZING, PROCESSING, COMPLETED, FAILED)

TRANSITIONS: dict[str, frozenset[str]] = {
    CREATED: frozenset({STREAMING, FINALIZING}),
    # streaming -> finalizing is the stream's own finalize (or an HTTP finalize while streaming).
    STREAMING: frozenset({INTERRUPTED, FINALIZING}),
    INTERRUPTED: frozenset({STREAMING, FINALIZING}),
    FINALIZING: frozenset({PROCESSING}),
    PROCESSING: frozenset({COMPLETED, FAILED}),
    COMPLETED: frozenset(),
    FAILED: frozenset(),
}

# States that take no more audio: a stream to such a session closes 4410.
FINALIZED: frozenset[str] = frozenset({FINALIZING, PROCESSING, COMPLETED, FAILED})
# States that no longer count against max_sessions.
ENDED: frozenset[str] = frozenset({COMPLETED, FAILED})


class InvalidTransition(Exception):
    def __init__(self, session_id: str, current: str, target: str) -> None:
        super().__init__(f"session {session_id}: invalid transition {current} -> {target}")
        self.session_id = session_id
        self.current = current
        self.target = target


def check_transition(session_id: str, current: str, target: str) -> None:
    if target not in TRANSITIONS.get(current, frozenset()):
        raise InvalidTransition(session_id, current, target)

"""Normalized events: what every codec turns a backend's frames into.

Checks, drivers and the report speak only these types, so one check serves every protocol.
Each event is a frozen dataclass with a ``type`` tag; ``to_dict`` / ``event_from_dict`` give the
JSON form that histories are stored in.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar


@dataclass(frozen=True)
class Word:
    word: str
    start_ms: int
    end_ms: int
    confidence: float = 1.0


@dataclass(frozen=True)
class Ready:
    """The stream is accepted; audio starts at ``committed_offset`` (bytes)."""

    type: ClassVar[str] = "ready"
    session_id: str
    committed_offset: int = 0
    sample_rate: int = 16000
    heartbeat_s: float | None = None
    idle_timeout_s: float | None = None
    max_frame_bytes: int | None = None


@dataclass(frozen=True)
class Ack:
    """Audio taken into memory up to ``received_offset``; persisted up to ``durable_offset``."""

    type: ClassVar[str] = "ack"
    received_offset: int
    durable_offset: int


@dataclass(frozen=True)
class Partial:
    type: ClassVar[str] = "partial"
    segment_id: int
    text: str
    start_ms: int
    end_ms: int


@dataclass(frozen=True)
class Final:
    type: ClassVar[str] = "final"
    segment_id: int
    text: str
    start_ms: int
    end_ms: int
    words: tuple[Word, ...] = ()


@dataclass(frozen=True)
class PipelineEvent:
    """A post-processing event (``session_finalized``, ``refinement_ready`` …)."""

    type: ClassVar[str] = "pipeline_event"
    name: str
    at: Any = None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Info:
    """A protocol-specific notice with no normalized meaning (Deepgram's ``SpeechStarted``,
    ``UtteranceEnd``, ``Metadata``). Kept so nothing the backend said is dropped."""

    type: ClassVar[str] = "info"
    name: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Error:
    type: ClassVar[str] = "error"
    code: str
    message: str = ""
    retryable: bool = False
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Closed:
    """The connection closed. ``code`` 1006 stands for an abnormal close with no close frame."""

    type: ClassVar[str] = "closed"
    code: int
    reason: str = ""


Event = Ready | Ack | Partial | Final | PipelineEvent | Info | Error | Closed

EVENT_TYPES: dict[str, type] = {
    cls.type: cls for cls in (Ready, Ack, Partial, Final, PipelineEvent, Info, Error, Closed)
}


def to_dict(event: Event) -> dict[str, Any]:
    """The JSON form of an event, tagged with its ``type``."""
    out = {"type": event.type, **asdict(event)}
    return out


def event_from_dict(data: dict[str, Any]) -> Event:
    """Inverse of :func:`to_dict`. Raises ``ValueError`` naming an unknown type."""
    kind = data.get("type")
    cls = EVENT_TYPES.get(kind)  # type: ignore[arg-type]
    if cls is None:
        raise ValueError(f"unknown event type {kind!r}; expected one of {sorted(EVENT_TYPES)}")
    fields = {k: v for k, v in data.items() if k != "type"}
    if cls is Final:
        fields["words"] = tuple(Word(**w) for w in fields.get("words", ()))
    return cls(**fields)

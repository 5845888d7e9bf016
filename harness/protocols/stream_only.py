"""What every stream-only protocol (a vendor's live API) shares: no session step over HTTP.

Deepgram, AssemblyAI, Speechmatics and OpenAI Realtime open a stream and that is the session: no
``POST`` to create it, no HTTP finalize, no resume. The reference server also shows such a session
at ``GET /v1/sessions/{id}`` by the id its stream reported (an extension the ``session_lookup``
capability names); a protocol whose stream reports no id sets ``session_lookup_path = False``.
"""

from __future__ import annotations

from typing import Any, ClassVar
from urllib.parse import quote

from harness.protocols.base import HttpRequest, SessionInfo, SessionParams, StreamTarget


class StreamOnlyCodec:
    """Base class: the HTTP half of a stream-only codec, and the flags that go with it."""

    name: ClassVar[str]
    supports_resume: ClassVar[bool] = False
    has_offsets: ClassVar[bool] = False
    sends_ready: ClassVar[bool] = False
    finalize_control: ClassVar[str] = "close_stream"  # the protocol's own end message ends it
    http_finalize: ClassVar[bool] = False
    session_lookup_path: ClassVar[bool] = True  # the stream reports an id the reference server shows

    def create_session_request(self, target: StreamTarget, params: SessionParams) -> None:
        return None

    def parse_session_created(
        self, status: int, body: Any, headers: dict[str, str] | None = None, params: SessionParams | None = None
    ) -> SessionInfo:
        raise ValueError(f"the {self.name} protocol has no session step; use local_session(params)")

    def local_session(self, params: SessionParams) -> SessionInfo:
        return SessionInfo(session_id=None, params=params)

    def finalize_request(self, target: StreamTarget, session: SessionInfo) -> None:
        return None

    def get_session_request(self, target: StreamTarget, session: SessionInfo) -> HttpRequest | None:
        """``GET /v1/sessions/{id}`` by the id the stream reported (a reference-server extension)."""
        if not self.session_lookup_path or not session.session_id:
            return None
        return HttpRequest("GET", f"/v1/sessions/{quote(session.session_id, safe='')}",
                           {"Authorization": f"Bearer {target.api_key}"})

    @staticmethod
    def time_base_ms_for(resume_offset: int | None, sample_rate: int) -> float:
        """Milliseconds of session audio sent before this connection (16-bit mono)."""
        return (resume_offset or 0) * 1000.0 / (2 * sample_rate)

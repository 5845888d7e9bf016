"""The Deepgram-compatible stream (``GET /v1/listen``): a subset of Deepgram's live API over the
same sessions, engines and finalize path as the v1 stream, so clients and SDKs written for
Deepgram run unchanged against the reference server.

Each connection is one session (``metadata.request_id`` is its session id, visible at
``GET /v1/sessions/{id}``). Raw PCM frames carry no offsets: every byte is appended (a sample split
across two frames is joined). ``KeepAlive`` only resets the timeout. ``Finalize`` flushes the
engine (those finals come with ``from_finalize: true``) and the stream goes on. ``CloseStream`` (or
an empty binary frame, Deepgram's older way) runs the shared finalize path, answers ``Metadata``
and closes 1000; the pipeline runs on without the connection. A connection that ends any other way
(client gone, ``NET-0001``, engine failure) is finalized as well: a Deepgram client cannot come
back to a session, so leaving it open would only hold a place against ``max_sessions`` forever.

Choices where Deepgram leaves room, made as Deepgram's own service and SDKs expect them:
- Credentials: ``Authorization: Token <key>`` (``Bearer`` too), or the subprotocol pair
  ``token, <key>`` that browsers use (answered with ``token``). Wrong or missing: HTTP 401 at the
  handshake, JSON body and ``dg-error`` header, as Deepgram does; SDKs report a failed connect.
- Parameters: ``encoding`` must be ``linear16`` (the default here), ``sample_rate`` 16000 (the
  default), ``channels`` 1; ``interim_results`` and ``vad_events`` are ``true``/``false``;
  ``endpointing`` is ``false`` or milliseconds; ``utterance_end_ms`` a positive integer. A bad
  one is refused at the handshake with HTTP 400, its name in the body's ``err_msg`` and the
  ``dg-error`` header. Other Deepgram parameters (``language``, ``punctuate`` …) are accepted and
  ignored. At capacity: accepted, then closed 1013 (like the v1 stream).
- No audio and no message for ``deepgram_timeout_s`` (10 s, ``--deepgram-timeout-s``): close 1011
  with a reason starting ``NET-0001``.
- ``speech_final``: true on finals the engine closed itself (a pause, ``max_segment_s`` or, for the
  scripted engine, its segment size); false on flushed finals (``from_finalize``) and with
  ``endpointing=false``. The endpointing value itself does not tune the engine.
- ``SpeechStarted`` (``vad_events=true``): when the first result of a segment appears, with the
  segment's start. ``UtteranceEnd`` (``utterance_end_ms``): Deepgram's rule on word timings, a gap of
  at least ``utterance_end_ms`` after the last finalized word, seen either before the next words or
  in the audio the engine has taken without finding any. Gapless audio never has one.
- Interim results carry the transcript only (``words`` empty): the engines report words with
  finals.

Reference-server extensions (not Deepgram's): ``model`` may name one of this server's engines
(``pocketsphinx``, ``scripted``; any other model means the server's default engine), and ``script``
gives the scripted engine its words.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

from fastapi.responses import JSONResponse
from starlette.datastructures import QueryParams
from starlette.websockets import WebSocket

from . import __version__
from .engines import BYTES_PER_MS, ENGINES
from .runtime import SessionRuntime
from .sessions import SessionError, SessionManager
from .states import FINALIZED
from .stats import Stats
from .timefmt import iso

log = logging.getLogger("reference_server.deepgram")

MODEL_UUID = str(uuid.uuid5(uuid.NAMESPACE_URL, "urn:reference-server:model"))  # stable, and a real UUID
UTTERANCE_POLL_S = 0.1  # how often the taken audio is checked for an utterance-ending gap
_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no")


@dataclass(frozen=True)
class ListenOptions:
    """The query parameters of one ``/v1/listen`` connection, checked."""

    interim_results: bool = False  # Deepgram's default
    vad_events: bool = False
    endpointing: bool = True  # false only with endpointing=false
    utterance_end_ms: int | None = None
    engine: str | None = None  # extension: model=<engine>
    script: str = ""  # extension: the scripted engine's words

    @classmethod
    def parse(cls, query: QueryParams) -> ListenOptions:
        """Raises SessionError(400) naming the first bad parameter."""
        encoding = query.get("encoding", "linear16")
        if encoding.lower() != "linear16":
            raise _bad("encoding", f"encoding={encoding!r} is not supported: send raw 16-bit PCM as encoding=linear16")
        sample_rate = _int(query, "sample_rate", 16000)
        if sample_rate != 16000:
            raise _bad("sample_rate", f"sample_rate={sample_rate} is not supported: audio must be 16000 Hz")
        channels = _int(query, "channels", 1)
        if channels != 1:
            raise _bad("channels", f"channels={channels} is not supported: audio must be mono (channels=1)")
        endpointing = _endpointing(query)
        utterance_end_ms = _int(query, "utterance_end_ms", None)
        if utterance_end_ms is not None and utterance_end_ms <= 0:
            raise _bad("utterance_end_ms",
                       f"utterance_end_ms must be a positive number of milliseconds; got {utterance_end_ms}")
        model = query.get("model")
        return cls(
            interim_results=_flag(query, "interim_results", False),
            vad_events=_flag(query, "vad_events", False),
            endpointing=endpointing,
            utterance_end_ms=utterance_end_ms,
            engine=model if model in ENGINES else None,
            script=query.get("script", ""),
        )

    def session_body(self, default_engine: str) -> dict[str, Any]:
        """The session creation request (the same validation as ``POST /v1/sessions``)."""
        options = {"interim_results": self.interim_results, "vad_events": self.vad_events,
                   "endpointing": self.endpointing, "utterance_end_ms": self.utterance_end_ms}
        return {"engine": self.engine or default_engine, "sample_rate": 16000, "script": self.script,
                "metadata": {"protocol": "deepgram", **{k: v for k, v in options.items() if v is not None}}}


def _bad(name: str, message: str) -> SessionError:
    return SessionError(400, "bad_request", message, name)


def _int(query: QueryParams, name: str, default: int | None) -> int | None:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise _bad(name, f"{name} must be an integer; got {raw!r}") from None


def _endpointing(query: QueryParams) -> bool:
    """``endpointing``: true/false, or the pause in milliseconds (which means on)."""
    raw = query.get("endpointing")
    if raw is None or raw == "" or raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    if not raw.isdigit():
        raise _bad("endpointing", f"endpointing must be false or a number of milliseconds >= 0; got {raw!r}")
    return True


def _flag(query: QueryParams, name: str, default: bool) -> bool:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    raise _bad(name, f"{name} must be true or false; got {raw!r}")


class UtteranceEnds:
    """Deepgram's UtteranceEnd rule on word timings (stream milliseconds): once a final has come,
    an utterance ends where a gap of ``gap_ms`` follows its last finalized word with no words in it.
    Pure bookkeeping; the connection feeds it results and the audio the engine has taken."""

    def __init__(self, gap_ms: int) -> None:
        self.gap_ms = gap_ms
        self.last_final_end: int | None = None  # last finalized word not yet followed by an UtteranceEnd
        self.heard_until = 0  # end of the latest words seen (finals and interim results)

    def on_result(self, start_ms: int, end_ms: int, final_word_end: int | None) -> int | None:
        """A result about to go out (``final_word_end``: its last word's end, for a final).
        Returns the last word end to report in an UtteranceEnd sent before it, if the gap was there."""
        due = self._due(start_ms)
        self.heard_until = max(self.heard_until, end_ms)
        if final_word_end is not None:
            self.last_final_end = final_word_end
        return due

    def on_audio(self, taken_ms: int) -> int | None:
        """The engine has taken audio through ``taken_ms`` and reported all it found in it."""
        return self._due(taken_ms)

    def _due(self, now_ms: int) -> int | None:
        if self.last_final_end is None or now_ms - max(self.last_final_end, self.heard_until) < self.gap_ms:
            return None
        end, self.last_final_end = self.last_final_end, None
        return end


class DeepgramConnection:
    """The session's stream sink: takes the session layer's v1 messages, speaks Deepgram's."""

    def __init__(self, ws: WebSocket, rt: SessionRuntime, manager: SessionManager, options: ListenOptions) -> None:
        self.ws = ws
        self.rt = rt
        self.manager = manager
        self.options = options
        self.model = rt.engine_name
        self._send_lock = asyncio.Lock()
        self.closed = False
        self.metadata_sent = False
        self.from_finalize = False  # set while a Finalize/CloseStream flush runs
        self.speech_segment = -1  # last segment id a SpeechStarted (or its result) was seen for
        self.utterances = UtteranceEnds(options.utterance_end_ms) if options.utterance_end_ms else None
        self.last_activity = time.monotonic()
        self.handling = False
        self.opened = self.last_activity
        self.odd_byte = b""
        self.sha = hashlib.sha256()
        self.bytes_in = 0
        self.refused_audio = False

    # --- StreamSink --------------------------------------------------------------------------
    async def send(self, message: dict[str, Any]) -> bool:
        kind = message.get("type")
        if kind in ("partial", "final"):
            return await self._on_result(message, is_final=kind == "final")
        if kind == "error":
            return await self._send(_error(message.get("code", "internal"), message.get("message", "")))
        return True  # acks and pipeline events have no Deepgram counterpart

    async def close(self, code: int, reason: str = "") -> None:
        if self.closed:
            return
        async with self._send_lock:
            if self.closed:
                return
            try:
                if code == 1000 and not self.metadata_sent:  # e.g. finalized over HTTP meanwhile
                    self.metadata_sent = True
                    await self.ws.send_text(_dumps(self.metadata()))
                await self.ws.close(code, reason)
            except Exception:  # noqa: BLE001 - already gone
                pass
            self.closed = True

    async def ack(self) -> None:
        return None  # Deepgram has no acks

    # --- messages ----------------------------------------------------------------------------
    async def _send(self, message: dict[str, Any]) -> bool:
        if self.closed:
            return False
        async with self._send_lock:
            if self.closed:
                return False
            try:
                await self.ws.send_text(_dumps(message))
                return True
            except Exception:  # noqa: BLE001 - the receive loop sees the disconnect
                self.closed = True
                return False

    async def _on_result(self, msg: dict[str, Any], *, is_final: bool) -> bool:
        words = msg.get("words") or []
        if self.utterances is not None:
            word_end = (words[-1]["end_ms"] if words else msg["end_ms"]) if is_final else None
            start = words[0]["start_ms"] if words else msg["start_ms"]
            due = self.utterances.on_result(start, msg["end_ms"], word_end)
            if due is not None:
                await self._send(self._utterance_end(due))
        if msg["segment_id"] > self.speech_segment:
            self.speech_segment = msg["segment_id"]
            if self.options.vad_events:
                await self._send({"type": "SpeechStarted", "channel": [0], "timestamp": msg["start_ms"] / 1000})
        if not is_final and not self.options.interim_results:
            return True
        return await self._send(self._results(msg, is_final=is_final))

    def _results(self, msg: dict[str, Any], *, is_final: bool) -> dict[str, Any]:
        words = [{"word": w["word"], "start": w["start_ms"] / 1000, "end": w["end_ms"] / 1000,
                  "confidence": w["confidence"], "punctuated_word": w["word"]} for w in msg.get("words", [])]
        confidence = sum(w["confidence"] for w in words) / len(words) if words else 0.0
        from_finalize = is_final and self.from_finalize
        return {
            "type": "Results",
            "channel_index": [0, 1],
            "duration": (msg["end_ms"] - msg["start_ms"]) / 1000,
            "start": msg["start_ms"] / 1000,
            "is_final": is_final,
            "speech_final": is_final and not from_finalize and self.options.endpointing,
            "from_finalize": from_finalize,
            "channel": {"alternatives": [{"transcript": msg["text"], "confidence": confidence, "words": words}]},
            "metadata": {"request_id": self.rt.id, "model_info": self._model_info(), "model_uuid": MODEL_UUID},
        }

    def _utterance_end(self, last_word_end_ms: int) -> dict[str, Any]:
        return {"type": "UtteranceEnd", "channel": [0, 1], "last_word_end": last_word_end_ms / 1000}

    def _model_info(self) -> dict[str, str]:
        return {"name": self.model, "version": __version__, "arch": "reference"}

    def metadata(self) -> dict[str, Any]:
        return {"type": "Metadata", "transaction_key": "deprecated", "request_id": self.rt.id,
                "sha256": self.sha.hexdigest(), "created": iso(self.rt.created_at),
                "duration": self.bytes_in / 32000, "channels": 1, "models": [MODEL_UUID],
                "model_info": {MODEL_UUID: self._model_info()}}

    # --- receiving ---------------------------------------------------------------------------
    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        helpers = [loop.create_task(self._timeout_watchdog())]
        if self.utterances is not None:
            helpers.append(loop.create_task(self._utterance_watch()))
        stream_closed = False
        try:
            while not self.closed:
                message = await self.ws.receive()
                if message["type"] == "websocket.disconnect":
                    break
                # While a message is handled (backpressure, a flush) the client's silence cannot
                # be measured: the timeout counts from the end of the handling.
                self.handling = True
                try:
                    if message.get("bytes") is not None:
                        if not message["bytes"]:  # an empty binary frame: Deepgram's older CloseStream
                            stream_closed = True
                            await self._close_stream()
                            break
                        await self._on_audio(message["bytes"])
                    elif message.get("text") is not None and await self._on_text(message["text"]):
                        stream_closed = True
                        break
                finally:
                    self.handling = False
                    self.last_activity = time.monotonic()
        except Exception as exc:  # noqa: BLE001 - the connection broke mid-receive
            log.debug("listen %s: receive ended: %r", self.rt.id, exc)
        finally:
            for task in helpers:
                task.cancel()
            self.closed = True
            if not stream_closed:
                self.manager.detach(self.rt, self)
                await self.manager.finalize(self.rt, "deepgram-disconnect")

    async def _on_audio(self, data: bytes) -> None:
        if self.rt.state in FINALIZED or self.rt.deleted:
            # finalized over HTTP meanwhile: the engines are closed, nothing more is transcribed
            if not self.refused_audio:
                self.refused_audio = True
                await self._send(_error("session_closed", "the session is finalized: audio from here on is not "
                                                          "transcribed"))
            return
        data = self.odd_byte + data
        cut = len(data) - len(data) % 2  # a sample split across frames waits for its other byte
        data, self.odd_byte = data[:cut], data[cut:]
        self.sha.update(data)
        self.bytes_in += len(data)
        step = self.manager.config.max_frame_bytes
        for i in range(0, len(data), step):
            self.manager.take_audio(self.rt, self.rt.received_offset, data[i:i + step])
        await self.manager.backpressure(self.rt)  # stop reading while the engine is far behind

    async def _on_text(self, text: str) -> bool:
        """Handles a control message; True when the stream is over (CloseStream)."""
        try:
            message = json.loads(text)
        except ValueError:
            message = None
        kind = message.get("type") if isinstance(message, dict) else None
        if kind == "KeepAlive":
            return False
        if kind == "Finalize":
            await self._flush()
            return False
        if kind == "CloseStream":
            await self._close_stream()
            return True
        await self._send(_error("bad_message", f"unknown control message {text[:80]!r}; expected KeepAlive, "
                                               "Finalize or CloseStream"))
        return False

    async def _flush(self) -> None:
        """Finalize: the open segment becomes a final (from_finalize) and the stream goes on."""
        try:
            await self.manager.flush_mid_stream(self.rt, before_flush=self._flushing)
        finally:
            self.from_finalize = False

    async def _close_stream(self) -> None:
        """CloseStream: the last finals (from_finalize), Metadata, the shared finalize path, 1000."""
        if self.rt.state not in FINALIZED:
            await self._flush()  # so that the last finals are told apart from endpoint ones
        await self.manager.finalize(self.rt, "deepgram")
        if not self.metadata_sent:
            self.metadata_sent = True
            await self._send(self.metadata())
        self.manager.detach(self.rt, self)  # the pipeline goes on without this connection
        await self.close(1000, "")

    def _flushing(self) -> None:
        self.from_finalize = True  # finals from here on answer the Finalize

    async def _timeout_watchdog(self) -> None:
        timeout = self.manager.config.deepgram_timeout_s  # Deepgram's is 10 s
        while not self.closed:
            remaining = self.last_activity + timeout - time.monotonic()
            if remaining <= 0 and self.handling:
                remaining = timeout
            elif remaining <= 0:
                await self.close(1011, f"NET-0001: no audio or message received within the {timeout:g} s"
                                       " timeout window")
                return
            await asyncio.sleep(remaining)

    async def _utterance_watch(self) -> None:
        """An utterance can also end in silence the engine has taken without finding words: checked
        whenever the engine is idle (every received byte fed and reported on)."""
        assert self.utterances is not None
        rt = self.rt
        while not self.closed:
            await asyncio.sleep(UTTERANCE_POLL_S)
            if rt.pending or rt.feed_lock.locked():
                continue
            due = self.utterances.on_audio(rt.received_offset // BYTES_PER_MS)
            if due is not None:
                await self._send(self._utterance_end(due))


def _dumps(message: dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"))


def _error(variant: str, message: str) -> dict[str, Any]:
    return {"type": "Error", "variant": variant, "description": message, "message": message}


def _credential(ws: WebSocket) -> tuple[str | None, str | None]:
    """The key and the subprotocol to answer with (``token`` when the key came as one)."""
    scheme, _, value = ws.headers.get("authorization", "").partition(" ")
    if scheme.lower() in ("token", "bearer") and value.strip():
        return value.strip(), None
    # browsers cannot set headers: Deepgram takes the key as the subprotocol pair "token, <key>"
    protocols = [p.strip() for p in ws.headers.get("sec-websocket-protocol", "").split(",")]
    if len(protocols) == 2 and protocols[0].lower() == "token" and protocols[1]:
        return protocols[1], protocols[0]
    return None, None


async def _deny(ws: WebSocket, status: int, code: str, message: str) -> None:
    body = {"err_code": code, "err_msg": message, "category": code, "message": message}
    await ws.send_denial_response(JSONResponse(body, status_code=status, headers={"dg-error": message}))


async def serve_listen(ws: WebSocket, manager: SessionManager, stats: Stats) -> None:
    """The endpoint: authorize and check parameters at the handshake, create the session, accept,
    attach, receive until the stream ends."""
    key, subprotocol = _credential(ws)
    if not manager.authorized(None, key):
        await _deny(ws, 401, "INVALID_AUTH",
                    "Invalid credentials: send Authorization: Token <API key> (or the subprotocols token, <API key>)")
        return
    try:
        options = ListenOptions.parse(ws.query_params)
        rt, _token = await manager.create(options.session_body(manager.config.engine))
    except SessionError as exc:
        if exc.status != 503:
            await _deny(ws, exc.status, "INVALID_QUERY_PARAMETER" if exc.status == 400 else exc.code, exc.message)
            return
        await ws.accept(subprotocol=subprotocol)
        await ws.close(1013, "at capacity: try again later")
        return
    try:
        await ws.accept(subprotocol=subprotocol)
    except Exception:  # noqa: BLE001 - the client left during the handshake: nobody knows this session
        await manager.delete(rt)
        return
    stats.ws_opened()
    try:
        conn = DeepgramConnection(ws, rt, manager, options)

        async def no_ready(_committed: int) -> None:
            return None  # Deepgram sends nothing until it has results

        if not await manager.attach(rt, conn, -1, no_ready):
            await conn.close(4410, "session already finalized")
            return
        await conn.run()
    finally:
        stats.ws_closed()

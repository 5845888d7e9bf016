"""The official Deepgram SDK's live client (``deepgram-sdk`` 7.x) as the system under test.

``AsyncDeepgramClient(api_key=..., environment=DeepgramClientEnvironment(production=<proxy>))``,
``listen.v1.connect(...)`` as an async context, ``send_media`` per chunk, the results read by
iterating the socket, ``send_close_stream`` at the end: the SDK's documented way to stream. The
application here is the SDK's own example and nothing more, so what the table shows is the SDK's
behaviour: a connection lost mid-stream ends the stream (``send_media`` or the iterator raises),
a refused handshake raises from ``connect``.

Documented behaviour (deepgram-sdk 7.17, ``listen/v1/raw_client.py`` and
``listen/v1/socket_client.py``): one websocket per ``connect``; no reconnect, no retry, no
automatic KeepAlive (``send_keep_alive`` is the application's to call): the application is to
reconnect, retry and keep the connection alive.
"""

from __future__ import annotations

import asyncio

from harness.relay.clients.base import SAMPLE_RATE, Case, Documented, Recorder, paced_audio

NAME = "deepgram-sdk"
DOCUMENTED = Documented(
    reconnects=False, retries_refusal=False, keepalive=False, detects_stall=False,
    retry_delays_s=(), max_attempts=1,
    source="deepgram-sdk AsyncV1SocketClient: one websocket per listen.v1.connect(), no retry; KeepAlive by "
           "send_keep_alive() only")


class DeepgramSdk:
    name = NAME
    documented = DOCUMENTED

    async def run(self, case: Case, rec: Recorder) -> None:
        from deepgram import AsyncDeepgramClient
        from deepgram.environment import DeepgramClientEnvironment

        env = DeepgramClientEnvironment(base=case.http_url, production=case.vendor_url, agent=case.vendor_url,
                                        agent_rest=case.http_url)
        client = AsyncDeepgramClient(api_key=case.api_key, environment=env)
        lost: list[Exception] = []  # what ended the socket under the reader, when it was not us
        try:
            async with client.listen.v1.connect(model="nova-3", encoding="linear16", sample_rate=str(SAMPLE_RATE),
                                                channels="1", interim_results="true") as socket:

                async def read() -> None:
                    try:
                        async for message in socket:
                            if getattr(message, "type", None) == "Results" and message.is_final:
                                alt = message.channel.alternatives[0]
                                if alt.transcript.strip():
                                    rec.final(alt.transcript, message.start, message.start + message.duration)
                    except Exception as exc:  # the connection lost: the SDK's iterator raises
                        rec.error(f"{type(exc).__name__}: {exc}", recoverable=False)
                        lost.append(exc)

                reader = asyncio.create_task(read())
                try:
                    async for chunk in paced_audio(case, rec):
                        if reader.done():
                            break  # the socket is gone: the SDK's stream has ended
                        await socket.send_media(chunk)
                    await asyncio.sleep(case.drain_s)
                    if not reader.done():
                        await socket.send_close_stream()
                    await asyncio.wait_for(asyncio.shield(reader), 10)
                finally:
                    reader.cancel()
                    await asyncio.gather(reader, return_exceptions=True)
        except Exception as exc:  # connect refused, or a send on a lost connection
            if not lost:
                rec.error(f"{type(exc).__name__}: {exc}", recoverable=False)
            lost.append(exc)
        if lost:
            rec.end("gave_up", f"{type(lost[0]).__name__}: {lost[0]}")
        else:
            rec.end("finished")

DRIVER = DeepgramSdk()

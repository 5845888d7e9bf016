"""The wire layer's pure parts: G.711 tables and the resampler against SoX, the connection
record's caps, and adapters fed frames directly (sans-I/O: no socket, no server)."""

from __future__ import annotations

import base64
import json
import subprocess

import numpy as np
import pytest
from starlette.datastructures import Headers, QueryParams

from reference_server.config import ServerConfig
from reference_server.wire.adapter import Audio, Close, Deny, Finish, Flush, Send
from reference_server.wire.assemblyai import AssemblyAIAdapter
from reference_server.wire.audio import ALAW, MULAW, AudioConverter, AudioFormat, AudioFormatError
from reference_server.wire.openai_realtime import OpenAIRealtimeAdapter
from reference_server.wire.records import MAX_FRAMES, ConnectionRecord
from vendor_audio import fixture_audio


CONFIG = ServerConfig(api_key="test-key", engine="scripted")


def snr_db(ours: bytes, reference: bytes) -> float:
    a = np.frombuffer(ours, "<i2").astype(float)
    b = np.frombuffer(reference, "<i2").astype(float)
    n = min(len(a), len(b))
    return float(10 * np.log10((b[:n] ** 2).sum() / max(((a[:n] - b[:n]) ** 2).sum(), 1e-9)))


def sox_to_16k(raw: bytes, encoding: list[str], rate: int) -> bytes:
    cmd = ["sox", "-t", "raw", "-r", str(rate), *encoding, "-c", "1", "-L", "-", "-t", "raw", "-r", "16000",
           "-e", "signed-integer", "-b", "16", "-"]
    return subprocess.run(cmd, input=raw, capture_output=True, check=True, timeout=30).stdout


@pytest.mark.parametrize("encoding, sox_encoding, rate", [
    ("mulaw", ["-e", "u-law", "-b", "8"], 8000),
    ("alaw", ["-e", "a-law", "-b", "8"], 8000),
    ("pcm_s16le", ["-e", "signed-integer", "-b", "16"], 24000),
    ("pcm_s16le", ["-e", "signed-integer", "-b", "16"], 48000),
])
def test_conversion_matches_sox_frame_by_odd_frame(encoding: str, sox_encoding: list[str], rate: int) -> None:
    raw = fixture_audio(encoding, rate)
    conv = AudioConverter(AudioFormat(encoding, rate))
    ours = b"".join(conv.convert(raw[i:i + 333]) for i in range(0, len(raw), 333)) + conv.flush()
    assert abs(len(ours) - len(raw) * 16000 * 2 // AudioFormat(encoding, rate).bytes_per_second) <= 4
    assert snr_db(ours, sox_to_16k(raw, sox_encoding, rate)) > 40


def test_g711_tables_hold_the_standard_values() -> None:
    assert (MULAW[0x00], MULAW[0x80], MULAW[0xFF], MULAW[0x7F]) == (-32124, 32124, 0, 0)
    assert (ALAW[0xD5], ALAW[0x55], ALAW[0x80], ALAW[0x00]) == (8, -8, 5504, -5504)


def test_an_unsupported_format_is_refused_by_name() -> None:
    with pytest.raises(AudioFormatError) as err:
        AudioFormat("pcm_s16le", 11025).check()
    assert err.value.field == "sample_rate"
    with pytest.raises(AudioFormatError) as err:
        AudioFormat("opus", 16000).check()
    assert err.value.field == "encoding"


def test_a_record_itemizes_frames_up_to_its_cap_then_counts_them_per_second() -> None:
    record = ConnectionRecord(id="c-1", protocol="test", opened_ns=0)
    for i in range(MAX_FRAMES + 3):
        record.audio(10, t_ns=i * 1_000_000)
    out = record.to_json()["audio"]
    assert len(out["frames"]) == MAX_FRAMES and out["total_frames"] == MAX_FRAMES + 3
    assert sum(f for _, f, _ in out["buckets"]) == 3 and out["total_bytes"] == 10 * (MAX_FRAMES + 3)
    assert out["max_gap_ns"] == 1_000_000
    record.closed(1000, "done")
    record.closed(1006, "echo")
    assert record.close_code == 1000


def openai_adapter(**query: str) -> OpenAIRealtimeAdapter:
    return OpenAIRealtimeAdapter(QueryParams({"intent": "transcription", **query}), Headers({}), CONFIG)


def test_openai_adapter_manual_commit_buffers_until_commit_and_refuses_an_empty_one() -> None:
    a = openai_adapter()
    assert isinstance(a.on_connect()[0], Send)
    a.on_text(json.dumps({"type": "session.update", "session": {"audio": {"input": {"turn_detection": None}}}}))
    empty = a.on_text(json.dumps({"type": "input_audio_buffer.commit"}))
    assert [x.message["error"]["code"] for x in empty if isinstance(x, Send)] == ["input_audio_buffer_commit_empty"]
    appended = a.on_text(json.dumps({"type": "input_audio_buffer.append",
                                     "audio": base64.b64encode(b"\x00" * 4800).decode()}))
    assert not any(isinstance(x, Audio) for x in appended)  # held in the input buffer
    committed = a.on_text(json.dumps({"type": "input_audio_buffer.commit"}))
    assert [type(x) for x in committed if not isinstance(x, Send)][-2:] == [Audio, Flush]
    a.on_result({"segment_id": 0, "text": "alpha", "start_ms": 0, "end_ms": 100, "words": []}, is_final=True)
    kinds = [x.message["type"] for x in a.on_flushed() if isinstance(x, Send)]
    assert kinds == ["input_audio_buffer.committed", "conversation.item.input_audio_transcription.delta",
                     "conversation.item.input_audio_transcription.completed"]


def test_openai_adapter_refuses_a_connection_without_intent_transcription() -> None:
    a = OpenAIRealtimeAdapter(QueryParams({}), Headers({}), CONFIG)
    [deny] = a.on_connect()
    assert isinstance(deny, Deny) and deny.status == 400 and deny.body["error"]["param"] == "intent"


def test_assemblyai_adapter_chunk_durations_and_terminate() -> None:
    a = AssemblyAIAdapter(QueryParams({"sample_rate": "8000", "encoding": "pcm_mulaw"}), Headers({}), CONFIG)
    assert a.on_connect() == []
    assert isinstance(a.on_bytes(b"\xff" * 400)[0], Audio)  # 50 ms of 8 kHz mu-law
    [close] = a.on_bytes(b"\xff" * 399)
    assert isinstance(close, Close) and close.code == 3007
    assert isinstance(a.on_text(json.dumps({"type": "Terminate"}))[-1], Finish)
    assert AssemblyAIAdapter(QueryParams({}), Headers({}), CONFIG).on_connect()[0].code == 3006

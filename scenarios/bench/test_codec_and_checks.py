"""The harness's own costs: encoding and decoding frames (per frame, on every stream of a load
run) and evaluating the checks over a one-hour session's history."""

from __future__ import annotations

import json

import pytest
from conftest import measured
from hour_history import one_hour_history

from harness.checks import integrity, latency
from harness.protocols.registry import get_codec

CHUNK = bytes(range(256)) * 12 + bytes(128)  # 3,200 bytes: 100 ms of audio
PARTIAL = json.dumps({"type": "partial", "segment_id": 3, "text": "we need to send the", "start_ms": 9000,
                      "end_ms": 10200})
FINAL = json.dumps({"type": "final", "segment_id": 3, "text": "we need to send the", "start_ms": 9000, "end_ms": 10500,
                    "words": [{"word": w, "start_ms": 9000 + 300 * i, "end_ms": 9300 + 300 * i, "confidence": 1.0}
                              for i, w in enumerate("we need to send the".split())]})
DEEPGRAM = json.dumps({"type": "Results", "is_final": True, "speech_final": True, "from_finalize": False,
                       "start": 9.0, "duration": 1.5, "channel": {"alternatives": [{
                           "transcript": "we need to send the", "confidence": 0.93,
                           "words": [{"word": w, "start": 9 + 0.3 * i, "end": 9.3 + 0.3 * i, "confidence": 0.93}
                                     for i, w in enumerate("we need to send the".split())]}]},
                       "metadata": {"request_id": "r-1"}})


@pytest.mark.parametrize("protocol", ["reference", "deepgram"])
def test_encode_audio_frame(scenario, benchmark, protocol):
    codec = get_codec(protocol)
    frame = benchmark(codec.encode_audio, 96_000, CHUNK)
    scenario.check(measured(scenario, benchmark, f"bench.encode_audio.{protocol}", frame_bytes=len(frame)))
    scenario.verify()


@pytest.mark.parametrize("protocol, frame", [("reference", PARTIAL), ("reference", FINAL), ("deepgram", DEEPGRAM)],
                         ids=["reference-partial", "reference-final", "deepgram-results"])
def test_decode_frame(scenario, benchmark, protocol, frame):
    codec = get_codec(protocol)
    events = benchmark(codec.decode, frame)
    scenario.check(measured(scenario, benchmark, f"bench.decode.{protocol}", events=[e.type for e in events]))
    scenario.verify()


@pytest.fixture(scope="module")
def hour():
    return one_hour_history()


def test_integrity_checks_one_hour(scenario, benchmark, hour):
    history, expected = hour
    verdicts = benchmark.pedantic(integrity.all_checks, args=(history, expected), rounds=3, iterations=1)
    failed = [v.message for v in verdicts if v.status.value == "fail"]
    scenario.check(measured(scenario, benchmark, "bench.integrity_checks_1h", records=len(history.records),
                            words=len(expected), failed=failed))
    scenario.verify()


def test_latency_checks_one_hour(scenario, benchmark, hour):
    history, _ = hour
    verdicts = benchmark.pedantic(latency.all_checks, args=(history,), rounds=1, iterations=1)
    finals = next(v for v in verdicts if v.name == "latency.final").metrics["final_latency_ms"]
    scenario.check(measured(scenario, benchmark, "bench.latency_checks_1h", records=len(history.records),
                            final_samples=len(finals)))
    scenario.verify()

"""The stream with the real engine (PocketSphinx) on a flite fixture: partials, then finals with
the words, through the same server path as the scripted engine."""

from __future__ import annotations

import wave
from pathlib import Path

import jiwer
import pytest

from srv_client import PIPELINE_ORDER, Api

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "audio" / "meeting-01-rms.wav"
TEXT = "we need to send the report to the client by friday"


async def test_pocketsphinx_stream_transcribes_a_fixture(start_ref_server) -> None:
    if not FIXTURE.exists():
        pytest.skip(f"{FIXTURE} is missing: run `harness fixtures`")
    with wave.open(str(FIXTURE)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16000, 1, 2)
        pcm = w.readframes(w.getnframes())
    srv = start_ref_server(engine="pocketsphinx")
    api = Api(srv.url, srv.api_key)
    try:
        r = await api.http.post("/v1/sessions", json={"sample_rate": 16000})  # the server's default engine
        assert r.status_code == 201
        s = r.json()
        st = await api.stream(s["session_id"], s["token"])
        await st.recv()
        end = await st.send_audio(pcm, chunk=3200)
        await st.acked(end, timeout=30)
        await st.send_json({"type": "finalize"})
        assert (await st.drain_until_closed(timeout=60)).code == 1000
        assert st.of_type("partial")
        hypothesis = " ".join(st.final_words()).lower()
        assert jiwer.wer(TEXT, hypothesis) < 0.3, hypothesis
        finals = st.of_type("final")
        assert [f["segment_id"] for f in finals] == list(range(len(finals)))
        for f in finals:
            assert all(f["start_ms"] <= w["start_ms"] <= w["end_ms"] <= f["end_ms"] for w in f["words"])
        body = await api.get(s["session_id"])
        assert body["engine"] == "pocketsphinx" and body["events"] == PIPELINE_ORDER
    finally:
        await api.aclose()

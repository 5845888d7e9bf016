"""The client drivers' plumbing: the driver's event lines become a history the checks read, the
vendor key never survives into them, and a real batch (the Deepgram SDK's driver in its own
process) against a vendor that is not there ends as the SDK's failure, not a hang."""

from __future__ import annotations

import io
import json

import pytest

from harness.history import History
from harness.relay.clients import DRIVERS, driver_module, load_driver
from harness.relay.clients.base import Case, Recorder
from harness.relay.clients.runner import fill_history, run_batch
from harness.services import free_port
from harness.paths import shipped_fixtures

WAV = str(shipped_fixtures() / "conversation-meeting.wav")


def case(url: str = "ws://127.0.0.1:9", **kw) -> Case:
    return Case("c/1", url, "k-secret", WAV, [("audio", 0.2)], **{"drain_s": 0.1, "timeout_s": 20, **kw})


def test_events_become_audio_finals_errors_and_a_close():
    events = [{"t_ns": 10, "kind": "audio", "offset": 0, "length": 640},
              {"t_ns": 20, "kind": "audio", "offset": 640, "length": 640},
              {"t_ns": 30, "kind": "final", "text": "alpha bravo", "start_s": 0.0, "end_s": 0.6},
              {"t_ns": 35, "kind": "final", "text": "alpha bravo", "start_s": 0.0, "end_s": 0.6},
              {"t_ns": 40, "kind": "error", "message": "lost", "recoverable": True},
              {"t_ns": 45, "kind": "silence", "start_ns": 41, "end_ns": 44},
              {"t_ns": 50, "kind": "end", "outcome": "gave_up", "detail": "after 4 attempts"}]
    h = History(t0_ns=0)
    run = fill_history(case(), h, events)
    assert [r.data["length"] for r in h.of_kind("audio_sent")] == [640, 640]
    assert [f.text for _, f in h.finals()] == ["alpha bravo", "alpha bravo"]  # a result given twice shows twice
    assert [f.segment_id for _, f in h.finals()] == [0, 1] and h.finals()[0][1].end_ms == 600
    assert run.errors == [(40, "lost", True)] and run.silences == [(41, 44)]
    assert run.outcome == "gave_up" and h.events("closed")[0][1].code == 1011


def test_the_vendor_key_is_masked_in_what_a_library_quotes():
    out = io.StringIO()
    rec = Recorder("c/1", out, secret="k-secret")
    rec.error("ApiError: headers: {'Authorization': 'Token k-secret'}")
    rec.end("gave_up", "k-secret refused")
    text = out.getvalue()
    assert "k-secret" not in text and text.count("<vendor key>") == 2


def test_cases_survive_the_plan_file_and_unknown_drivers_are_named():
    c = case()
    assert Case.from_dict(json.loads(json.dumps(c.to_dict()))) == c
    assert c.listen_url == "ws://127.0.0.1:9/v1/listen" and c.http_url == "http://127.0.0.1:9"
    with pytest.raises(ValueError, match="unknown client driver 'nope'; known: livekit-deepgram"):
        driver_module("nope")
    for name in DRIVERS:  # each module names itself and documents its behaviour without importing its library
        assert driver_module(name).NAME == name and driver_module(name).DOCUMENTED.source
        assert load_driver(name).documented is driver_module(name).DOCUMENTED


async def test_a_real_batch_against_a_missing_vendor_ends_as_the_sdks_failure(tmp_path):
    c = case(f"ws://127.0.0.1:{free_port()}")  # nothing listens there
    bad = Case("c/2", c.vendor_url, "k", str(tmp_path / "missing.wav"), [("audio", 0.2)], timeout_s=20)
    histories = {"c/1": History(), "c/2": History()}
    runs = await run_batch("deepgram-sdk", [c, bad], histories, tmp_path / "sdk.log", deadline_s=60)
    assert runs["c/1"].outcome == "gave_up" and "Connect" in runs["c/1"].detail
    assert runs["c/1"].errors and runs["c/1"].history is histories["c/1"]
    assert runs["c/2"].outcome == "driver_error" and "missing.wav" in runs["c/2"].detail

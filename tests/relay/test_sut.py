"""The system under test as a process: placeholders, readiness, and the errors that name what
went wrong."""

from __future__ import annotations

import shlex
import sys

import pytest

from harness.errors import ServiceError, is_harness_side
from harness.relay.sut import DEFAULT_SUT, SutError, SutProcess, fill_command
from harness.services import free_port


def test_placeholders_are_filled_and_defects_passed_as_flags():
    argv = fill_command("svc --port {port} --dg {deepgram_url} {defects}",
                        {"port": "9", "deepgram_url": "ws://127.0.0.1:1/v1/listen"}, ["relay-burst-gaps"])
    assert argv == ["svc", "--port", "9", "--dg", "ws://127.0.0.1:1/v1/listen", "--defect", "relay-burst-gaps"]
    assert fill_command("svc {defects}", {}) == ["svc"]
    assert "{defects}" in DEFAULT_SUT and "{deepgram_url}" in DEFAULT_SUT


def test_the_default_command_takes_keys_that_look_like_flags():
    argv = fill_command(DEFAULT_SUT, {"port": "1", "deepgram_url": "ws://127.0.0.1:2/v1/listen",
                                      "vendor_key": "-vk", "api_key": "-ck"})
    assert "--deepgram-api-key=-vk" in argv and "--api-key=-ck" in argv


def test_unknown_placeholders_and_defects_without_a_place_are_refused():
    with pytest.raises(SutError, match=r"unknown placeholder\(s\) \{dg_url\}; known: \{port\}"):
        fill_command("svc {dg_url}", {})
    with pytest.raises(SutError, match="no {defects} placeholder"):
        fill_command("svc --port {port}", {"port": "1"}, ["relay-health-na"])
    with pytest.raises(SutError, match="not a valid command template"):
        fill_command("svc {port", {})


def test_a_service_that_exits_is_reported_with_its_code_and_output(tmp_path):
    argv = [sys.executable, "-c", "print('no vendor url given'); raise SystemExit(3)"]
    sut = SutProcess(argv, free_port(), log_path=tmp_path / "sut.log", start_timeout_s=10)
    with pytest.raises(SutError) as err:
        sut.start()
    text = str(err.value)
    assert "exited with code 3" in text and "no vendor url given" in text
    assert "to accept connections" in text  # what it waited for
    assert isinstance(err.value, ServiceError) and is_harness_side(err.value)


def test_a_service_that_never_answers_times_out_naming_the_url(tmp_path):
    port = free_port()
    argv = [sys.executable, "-c", "import time; time.sleep(60)"]
    sut = SutProcess(argv, port, ready_url=f"http://127.0.0.1:{port}/health", log_path=tmp_path / "sut.log",
                     start_timeout_s=1.0)
    with pytest.raises(SutError, match=rf"not ready after 1 s: waited for GET http://127.0.0.1:{port}/health"):
        sut.start()
    assert not sut.running()


def test_a_ready_service_is_sampled_and_stopped(tmp_path):
    port = free_port()
    code = f"import socket,time; s=socket.socket(); s.bind(('127.0.0.1',{port})); s.listen(); time.sleep(60)"
    sut = SutProcess([sys.executable, "-c", code], port, log_path=tmp_path / "sut.log", start_timeout_s=10)
    with sut:
        assert sut.running()
        sut._stop_sampling.wait(1.2)
        assert sut.memory and sut.memory[-1].rss_bytes > 1_000_000
    assert not sut.running() and shlex.join(sut.argv) in (tmp_path / "sut.log").read_text()

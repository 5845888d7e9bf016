"""The example relay's command line: its defects are the harness's list, and bad input is refused
with a clear error."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from harness.relay import RELAY_DEFECTS
from harness.relay.sut import EXAMPLE_RELAY


@pytest.fixture(scope="module")
def relay_module():
    spec = importlib.util.spec_from_file_location("example_relay", EXAMPLE_RELAY / "relay.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[spec.name]


def test_the_example_relays_defects_are_the_harness_list(relay_module):
    assert relay_module.DEFECTS == RELAY_DEFECTS


def test_the_vendor_url_becomes_a_listen_websocket_url(relay_module):
    assert relay_module.vendor_listen_url("http://127.0.0.1:9") == "ws://127.0.0.1:9/v1/listen"
    assert relay_module.vendor_listen_url("wss://api.deepgram.com/v1/listen/") == "wss://api.deepgram.com/v1/listen"
    with pytest.raises(ValueError, match="must be ws://, wss://, http:// or https://"):
        relay_module.vendor_listen_url("ftp://x")


@pytest.mark.parametrize("args, message", [
    (["--defect", "relay-typo"], "unknown defect 'relay-typo'; known defects: relay-duplicate-vendor-connection"),
    ([], "no vendor key"),
    (["--deepgram-api-key", "k"], "no client key"),
])
def test_bad_command_lines_are_refused(args, message):
    proc = subprocess.run([sys.executable, str(EXAMPLE_RELAY), *args], capture_output=True, text=True, timeout=30,
                          env={"PATH": "/usr/bin:/bin"})
    assert proc.returncode == 2 and message in proc.stderr

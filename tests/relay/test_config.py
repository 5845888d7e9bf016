"""relay.toml: the shipped file loads; a bad one is refused naming the field."""

from __future__ import annotations

import pytest

from harness.relay import RELAY_DEFECTS, split_defects
from harness.relay.config import RelayConfig, RelayConfigError
from harness.selftest import DEFECT_SUITES


def test_the_shipped_file_loads():
    cfg = RelayConfig.load()
    assert cfg.vendor == "deepgram" and cfg.correlate == "tag" and cfg.max_gap_ms == 300.0


@pytest.mark.parametrize("data, message", [
    ({"vendr": "deepgram"}, "unknown field(s) vendr; known: vendor"),
    ({"max_gap_ms": "300"}, "max_gap_ms must be float"),
    ({"correlate": "bytes"}, "correlate must be one of tag, time"),
    ({"vendor": "nuance"}, "vendor 'nuance' is not driven"),
    ({"vendor_timeout_s": 0}, "vendor_timeout_s must be > 0"),
    ({"token_request": "/v1/auth/grant"}, 'token_request must be "GET /path" or "POST /path"'),
])
def test_bad_fields_are_named(data, message):
    with pytest.raises(RelayConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        RelayConfig.from_dict(data, "relay.toml")


def test_a_file_that_is_not_toml_is_refused(tmp_path):
    bad = tmp_path / "relay.toml"
    bad.write_text("vendor = \n")
    with pytest.raises(RelayConfigError, match="not valid TOML"):
        RelayConfig.load(bad)


def test_relay_defects_are_told_from_the_servers():
    assert split_defects(["no-resume", "relay-burst-gaps"]) == (("no-resume",), ("relay-burst-gaps",))
    assert len(RELAY_DEFECTS) == 9 and set(RELAY_DEFECTS) <= set(DEFECT_SUITES)

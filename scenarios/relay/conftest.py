"""Fixtures of the relay suite: the vendor stand-in, the recording fault proxy and the system under
test, started once for the session (see relay_kit.py)."""

from __future__ import annotations

import pytest
from relay_kit import RelayEnv

from harness.relay import RELAY_DEFECTS, split_defects
from harness.relay.config import RelayConfig, RelayConfigError

EXAMPLE_PROTOCOL = "deepgram"  # the example relay's client side speaks Deepgram's live API


@pytest.fixture(scope="session")
def relay_config(harness_options) -> RelayConfig:
    try:
        return RelayConfig.load(harness_options.relay_config)
    except RelayConfigError as exc:
        raise pytest.UsageError(str(exc)) from exc


@pytest.fixture(scope="session")
def relay_env(harness_options, relay_config, run_dir):
    server_defects, relay_defects = split_defects(harness_options.defects)
    if server_defects:
        raise pytest.UsageError(f"the relay suite switches on relay defects only ({', '.join(RELAY_DEFECTS)}); "
                                f"{', '.join(server_defects)} belong to the reference server")
    user_sut = harness_options.sut or harness_options.sut_url
    env = RelayEnv(protocol=harness_options.protocol if user_sut else EXAMPLE_PROTOCOL, config=relay_config,
                   sut_cmd=harness_options.sut, sut_url=harness_options.sut_url,
                   vendor_port=harness_options.vendor_port, relay_defects=relay_defects,
                   api_key=harness_options.api_key if user_sut else None,
                   log_dir=run_dir.path / "artifacts" / "relay")
    try:
        yield env
    finally:
        env.close()


@pytest.fixture
def relay(relay_env, scenario):
    """The session's RelayEnv, with the service's log registered as the scenario's artifact."""
    if relay_env.sut is not None and relay_env.sut.log_path:
        scenario.artifact("service log", relay_env.sut.log_path)
    return relay_env



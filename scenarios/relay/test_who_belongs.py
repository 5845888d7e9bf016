"""Nobody in who does not belong: a client without credentials, with a wrong key or with another
session's token is refused before the service spends its vendor key on it, and two concurrent
sessions streaming different scripted audio never see each other's audio or transcript, judged at
both ends (each client's transcript, and the vendor connections tagged with each session).

Per-session tokens: relay.toml ``token_request`` says how a client gets one (the example relay:
``GET /v1/auth/grant`` with the service key, ``{"access_token": ...}`` back, then
``Authorization: Bearer TOKEN``). The expectation written down here is the one a client author
has: a token opens one session; a second client presenting it, while the first streams, is
refused 401 or 403.
"""

from __future__ import annotations

import secrets

import pytest
from relay_kit import OTHER_SCRIPT, SCRIPT, WORD_MS, SessionSpec

from harness.checks import relay as checks
from harness.relay.client import Audio

INTRUDER_STEPS = [Audio(1.0)]  # what it would stream if let in: enough for the vendor to answer
CREDENTIALS = {
    "no-credentials": ("a client without credentials", {}),
    "wrong-key": ("a client with a wrong key", {"Authorization": "Token wrong-" + secrets.token_hex(8)}),
}


@pytest.mark.catches("relay-no-auth")
@pytest.mark.parametrize("credential", list(CREDENTIALS))
def test_a_client_without_valid_credentials_is_refused(scenario, relay, credential):
    who, headers = CREDENTIALS[credential]
    session = relay.stream(INTRUDER_STEPS, scenario.history(credential=credential), headers=headers,
                           health_every_s=None)
    relay.save_leg(scenario, session)
    scenario.check(checks.intruder_refused(session.history, session.foreign_connections(set()), who))
    scenario.verify()


@pytest.mark.catches("relay-token-reuse", "relay-no-auth")
def test_another_sessions_token_is_refused(scenario, relay):
    if not relay.config.token_request:
        pytest.skip("relay.toml names no token_request: the service has no per-session tokens to misuse")
    token = relay.grant_token()
    bearer = {"Authorization": f"Bearer {token}"}
    owner, intruder = relay.stream_together([
        SessionSpec([Audio(3.0)], scenario.history(role="token owner"), headers=bearer),
        # starts once the owner's session is up and streaming: the token is the owner's by then
        SessionSpec(INTRUDER_STEPS, scenario.history(role="another client with the owner's token"), headers=bearer,
                    start_after_s=1.0),
    ])
    relay.save_leg(scenario, owner)
    # the token opens its own session (a service that refuses every token would pass the rest)
    scenario.check(checks.scripted_words(owner.history, owner.conns, SCRIPT, WORD_MS))
    scenario.check(checks.intruder_refused(intruder.history, intruder.foreign_connections({owner.history.session_id}),
                                           "a client with another session's token"))
    scenario.verify()


@pytest.mark.catches("relay-cross-talk")
def test_concurrent_sessions_never_see_each_others_audio_or_transcript(scenario, relay):
    # different lengths, so audio that goes to the wrong vendor connection shows in byte counts too
    a, b = relay.stream_together([
        SessionSpec([Audio(4.0)], scenario.history(role="first session", script_name="nato")),
        SessionSpec([Audio(6.0)], scenario.history(role="second session", script_name="plants"), script=OTHER_SCRIPT),
    ])
    relay.save_leg(scenario, a, "vendor-leg-first.json")
    relay.save_leg(scenario, b, "vendor-leg-second.json")
    scenario.check(checks.sessions_isolated([(a.history, a.conns, SCRIPT), (b.history, b.conns, OTHER_SCRIPT)]))
    for run, script in ((a, SCRIPT), (b, OTHER_SCRIPT)):
        scenario.check(checks.scripted_words(run.history, run.conns, script, WORD_MS))
        scenario.check(checks.audio_delivered(run.history, run.conns))
    scenario.verify()

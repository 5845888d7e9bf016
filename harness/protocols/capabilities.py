"""What a protocol (and the backend behind it) can do, so scenarios and checks state what they need.

A codec declares ``capabilities`` (a frozenset of the names below); the target may add or remove
some (``--capabilities +health,-scripted_engine`` or harness.toml ``target.capabilities``), and the
embedded reference server adds ``embedded_server``. A scenario says what it needs with
``@pytest.mark.needs("offsets", ...)``; the harness pytest plugin leaves out, at collection and
with the reason printed, every scenario whose needs the target does not meet. No scenario or
check asks for a protocol by name.
"""

from __future__ import annotations

from collections.abc import Iterable

# name -> what it means (printed in the reason a scenario is left out)
CAPABILITIES: dict[str, str] = {
    "api_key": "the backend checks an API key, at session creation or on the stream, and refuses a wrong one",
    "session_api": "sessions are created and read over HTTP (POST /v1/sessions, GET /v1/sessions/{id})",
    "session_lookup": "a session can be read over HTTP by the id its stream reported (GET /v1/sessions/{id})",
    "http_finalize": "a session can be finalized over HTTP (POST /v1/sessions/{id}/finalize)",
    "offsets": "audio frames carry byte offsets, the server acks them and a reconnect resumes from its offset",
    "replay": "a reconnect replays the finals the client has not seen (last_segment_id)",
    "segment_ids": "finals carry the server's segment ids (0, 1, 2 ... with no holes)",
    "ready": "the server sends a ready message before audio may flow",
    "partials": "the stream sends interim (partial) results while audio flows, before a segment's final",
    "endpointing": "the server ends segments by itself at pauses in speech, so one session gives several finals "
                   "without the client committing each",
    "pipeline_events": "the stream carries the post-processing pipeline's events after finalize",
    "keepalive": "the client can keep a silent stream open with a keepalive message",
    "idle_timeout": "the server closes a stream with no audio and no keepalive after a documented idle timeout "
                    "(ready.idle_timeout_s, or the codec's idle_timeout_s) with a documented close (the codec's "
                    "idle_close)",
    "scripted_engine": "sessions can ask for the scripted engine (a test double that replays a given script)",
    "delete": "a session can be deleted (DELETE /v1/sessions/{id})",
    "health": "GET /health reports the documented integer counters",
    "stats": "GET /v1/stats reports the documented figures",
    "v1_frames": "the stream takes hand-made PROTOCOL.md v1 frames (8-byte offset header, JSON controls)",
    "embedded_server": "a reference server the harness started itself (process faults, server flags, "
                       "test hooks, planted defects)",
}


def check_names(names: Iterable[str], where: str) -> frozenset[str]:
    """The names as a frozenset; ValueError naming ``where`` and the unknown ones otherwise."""
    names = frozenset(names)
    unknown = sorted(names - CAPABILITIES.keys())
    if unknown:
        raise ValueError(f"{where}: unknown capabilit{'y' if len(unknown) == 1 else 'ies'} "
                         f"{', '.join(map(repr, unknown))}; known: {', '.join(sorted(CAPABILITIES))}")
    return names


def apply_modifiers(base: frozenset[str], spec: str | Iterable[str] | None, where: str = "--capabilities") -> frozenset[str]:
    """``base`` with ``+name`` (or ``name``) added and ``-name`` removed, from ``"+a,-b"`` or a list."""
    if not spec:
        return base
    items = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec) if s.strip()]
    add = {i.lstrip("+") for i in items if not i.startswith("-")}
    remove = {i[1:] for i in items if i.startswith("-")}
    check_names(add | remove, where)
    return frozenset((base | add) - remove)


def missing(needs: Iterable[str], have: frozenset[str]) -> list[str]:
    """The needed capabilities that ``have`` lacks, in the order given."""
    return [n for n in needs if n not in have]


def explain(names: Iterable[str]) -> str:
    """"offsets (audio frames carry ...); replay (...)" for a left-out reason."""
    return "; ".join(f"{n} ({CAPABILITIES[n]})" for n in names)


# What the embedded reference server offers whatever codec speaks to it: the harness started it
# (process faults, flags, hooks, defects), and its HTTP extras serve every protocol's sessions.
EMBEDDED_CAPABILITIES = frozenset({"embedded_server", "session_lookup", "health", "stats"})


def target_capabilities(protocol: str, embedded: bool, modifiers: str | Iterable[str] | None = None) -> frozenset[str]:
    """What a target can do when spoken to with ``protocol``: the codec's capabilities, the
    embedded server's when the harness started it, then ``--capabilities`` modifiers."""
    from harness.protocols.registry import capabilities_of

    have = capabilities_of(protocol) | (EMBEDDED_CAPABILITIES if embedded else frozenset())
    return apply_modifiers(have, modifiers)

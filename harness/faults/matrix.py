"""The chaos fault matrix as data: each case is a session (fixture, length, engine, pace) and a
schedule of faults (:class:`~harness.faults.schedule.Step`: a fault type with its parameters, a
trigger, a duration). :mod:`harness.faults.matrix_runner` runs the cases side by side, and
:mod:`harness.checks.chaos` judges each one.

The scripted engine makes integrity exact (every byte maps to one known word); with PocketSphinx
the baseline is a clean run of the same audio on the same target.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from harness.faults.schedule import AfterAudio, Step
from harness.faults.signals import Freeze, Kill9, SigtermRestart
from harness.faults.toxics import Bandwidth, Blackhole, Latency, LimitData, ProxyDown, ResetPeer, SlowClose, Slicer
from harness.faults.ws_faults import DropFinal, WsClose, WsDelay, WsDuplicate, WsHold, WsNoPong, WsReorder

# Distinct words, so a lost or doubled byte range names itself in a failure message.
SCRIPT = (
    "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa "
    "quebec romeo sierra tango uniform victor whiskey xray yankee zulu"
)
WORD_MS = 300  # the scripted engine's default word length
DEFAULT_FIXTURE = "medical-01-rms"
LONG_FIXTURE = "conversation-meeting"


class CaseSkipped(Exception):
    """This case cannot run against this target (the reason says why); the test skips it."""


@dataclass(frozen=True)
class FaultCase:
    """One row of the matrix: a session and the schedule of faults it goes through."""

    id: str
    steps: tuple[Step, ...] = ()
    fixture_id: str = DEFAULT_FIXTURE
    audio_s: float | None = 5.1  # None: the whole fixture; 5.1 s = 17 words, the last segment open at finalize
    engine: str = "scripted"
    pace: float = 1.0
    seed: int = 1
    metadata: dict[str, Any] = field(default_factory=dict)  # session metadata (scripted engine knobs)
    server_args: tuple[str, ...] = ()  # a dedicated server's extra arguments
    catches: tuple[str, ...] = ()  # planted defects this case catches (selftest marker)
    kind: str = "stream"  # stream: a full session through the faults; silent_client: see run_silent_client
    trust_latency_ms: float | None = None  # check that the harness measures this injected latency within 10 %
    needs: tuple[str, ...] = ()  # capabilities the row itself needs, whichever way the matrix runs (see below)
    utterances: tuple[str, ...] = ()  # instead of fixture_id: these fixtures one after another (see for_target)

    @property
    def fault(self) -> str:
        """The fault's name (the first step's), ``none`` for the control run."""
        return self.steps[0].fault.name if self.steps else "none"

    @property
    def layers(self) -> set[str]:
        return {s.fault.layer for s in self.steps}

    @property
    def layer(self) -> str:
        return self.steps[0].fault.layer if self.steps else "none"

    @property
    def own_server(self) -> bool:
        """Process and docker faults and the silent client (a small heartbeat) need a server of their own."""
        return bool({"process", "docker"} & self.layers) or self.kind == "silent_client"

    @property
    def params(self) -> dict[str, Any]:
        """What the report shows as ``fault_params``: the schedule's steps as data."""
        if not self.steps:
            return {}
        described = [{k: v for k, v in s.describe().items() if k != "target"} for s in self.steps]
        if len(described) == 1:
            return {k: v for k, v in described[0].items() if k != "type"}
        return {"steps": described}


def _at(ms: float) -> AfterAudio:
    return AfterAudio(int(round(ms)))


# --- the matrix ------------------------------------------------------------------------------
RESUME = ("no-resume",)


def _base_cases(long: bool, seed: int = 1) -> list[FaultCase]:
    """The fault matrix; ``long`` stretches the faults (nightly)."""
    k = 2.0 if long else 1.0
    blackhole_s, down_s, freeze_s = (8.0, 5.0, 10.0) if long else (3.0, 2.0, 5.0)
    end_ms = 5100  # the audio's end (audio_s = 5.1): the finalize cases start just before it

    def step(fault: Any, at_ms: float | None = None, duration_s: float | None = None) -> tuple[Step, ...]:
        at = _at(at_ms) if at_ms is not None else Step(fault).at
        return (Step(fault, at, None if duration_s is None else int(round(duration_s * 1000))),)

    def ws_close(code: int, reason: str) -> tuple[Step, ...]:
        # After 2 s of audio (some audio went through and a final was sent), at the client's next
        # message (an audio frame: binary, or JSON where the protocol carries audio in text),
        # which every protocol sends then, whether or not its server acks.
        return step(WsClose(code, reason, "upstream", "", 1), 2000)

    cases = [
        FaultCase("control", catches=("final-lost-on-close",)),
        FaultCase("latency-down-jitter", step(Latency(300, 50, "downstream"), 1000, 2.5 * k)),
        FaultCase("latency-up", step(Latency(300, 0, "upstream"), 1000, 2.5 * k)),
        FaultCase("bandwidth-below-audio-rate", step(Bandwidth(16, "upstream"), 1000, 2.0 * k)),
        FaultCase("slicer", step(Slicer(64, 32, 200, "both"))),
        FaultCase("reset-peer-mid-stream", step(ResetPeer(0, "upstream"), 2000, 0.3), catches=RESUME),
        FaultCase("blackhole", step(Blackhole(0, "both"), 1500, blackhole_s)),
        FaultCase("proxy-down", step(ProxyDown(), 2000, down_s), catches=RESUME),
        FaultCase("limit-data", step(LimitData(48000, "upstream"), 1000, 3.0 * k), catches=RESUME),
        FaultCase("slow-close-on-finalize", step(SlowClose(2000, "downstream"), end_ms - 300, 15.0),
                  catches=("final-lost-on-close",)),
        FaultCase("latency-spike-on-finalize", step(Latency(1000, 0, "both"), end_ms - 200, 2.5 * k),
                  catches=("final-lost-on-close",)),
        # The second final (segment 1). With five-word segments the third, arriving before finalize,
        # reveals the hole and the client reconnects for the replay; with longer segments the third
        # comes after finalize, where no reconnect can replay it (4410), and the client reads the lost
        # final from the session's record (integrity.final_recovery says which way it came).
        # Needs a second final to drop: a protocol whose client commits each turn gives one per session.
        FaultCase("ws-drop-final-2", step(DropFinal(nth=2)), catches=RESUME, needs=("endpointing",)),
        # Audio frames doubled or out of order, and acks held back: what byte offsets and acks are
        # for. Without them a doubled frame is doubled audio by construction, nothing to judge.
        FaultCase("ws-duplicate-audio-frame", step(WsDuplicate("upstream", kind="binary", nth=20)), needs=("offsets",)),
        FaultCase("ws-hold-acks", step(WsHold("downstream", kind="ack", hold_ms=int(2000 * k)), 1000), needs=("offsets",)),
        FaultCase("ws-reorder-audio", step(WsReorder("upstream", kind="binary", nth=15, after=1)), needs=("offsets",)),
        FaultCase("ws-delay-final", step(WsDelay("downstream", nth=1, delay_ms=1500, final=True))),
        FaultCase("ws-close-1011", ws_close(1011, "injected internal error"), catches=RESUME),
        FaultCase("ws-close-1001", ws_close(1001, "injected going away"), catches=RESUME),
        FaultCase("ws-silent-client", step(WsNoPong(silence_client=True)), kind="silent_client",
                  server_args=("--heartbeat-s", "1", "--idle-timeout-s", "60"), catches=("no-heartbeat",)),
        FaultCase("kill9-restart", step(Kill9(down_s=0.5), 2000)),
        FaultCase("frozen", step(Freeze(), 1500, freeze_s)),
        FaultCase("graceful-restart", step(SigtermRestart(down_s=0.0), 2000)),
        FaultCase("latency-measured", step(Latency(300, 0, "downstream"), 1500, 3.0), audio_s=6.0,
                  metadata={"script_segment_words": 1}, trust_latency_ms=300.0, needs=("scripted_engine",)),
    ]
    return [replace(c, seed=seed) for c in cases]


def cases(profile: str) -> list[FaultCase]:
    """The CI matrix (scripted engine, short fixture, 1x pace), or the nightly one: the matrix
    with longer faults over three seeds, on the long conversation, and with PocketSphinx."""
    if profile == "ci":
        base = _base_cases(long=False)
        # One real-ASR session: PocketSphinx at real time against its own clean run of the same audio.
        return base[:1] + [_with(base[0], id="control-pocketsphinx", engine="pocketsphinx", audio_s=None, catches=())] + base[1:]
    if profile != "nightly":
        raise ValueError(f"unknown profile {profile!r}; expected 'ci' or 'nightly'")
    out: list[FaultCase] = []
    for seed in (1, 2, 3):
        out += [_with(c, id=f"{c.id}-s{seed}") for c in _base_cases(long=True, seed=seed)]
    by_id = {c.id: c for c in _base_cases(long=True)}
    for cid in ("control", "latency-down-jitter", "blackhole", "proxy-down", "ws-drop-final-2", "kill9-restart",
                "graceful-restart"):
        out.append(_with(by_id[cid], id=f"{cid}-conversation", fixture_id=LONG_FIXTURE, audio_s=None))
    # Six-word segments: the dropped final is the one still open at finalize (recovered from the record).
    out.append(_with(by_id["ws-drop-final-2"], id="ws-drop-final-2-six-word-segments",
                     metadata={"script_segment_words": 6}))
    for cid in ("control", "latency-down-jitter", "latency-up", "slicer", "bandwidth-below-audio-rate",
                "ws-hold-acks", "ws-delay-final"):
        out.append(_with(by_id[cid], id=f"{cid}-pocketsphinx", engine="pocketsphinx", audio_s=None, catches=()))
    return out


def _with(case: FaultCase, **changes: Any) -> FaultCase:
    return replace(case, **changes)


# --- which way the matrix runs on a target -----------------------------------------------------
# With resume (byte offsets, acks, replay of finals by segment id: the reference protocol) a
# faulted session must come out word for word as if nothing happened. Without it (Deepgram,
# AssemblyAI, Speechmatics, OpenAI Realtime) the client reconnects as a new session after a
# fault, as those vendors' own clients do, and the checks measure what was lost around the fault
# against a clean run of the same audio on the same target (harness.checks.reconnect).
RESUME_NEEDS = ("session_api", "offsets", "replay", "segment_ids", "pipeline_events")

# Without the scripted engine the words come from the target's own recognizer, so a session needs
# speech with pauses: words before and after a fault fall in segments of their own, which must
# match the clean baseline. Three short utterances, each followed by a pause the endpointer hears.
UTTERANCES = ("meeting-03-awb", "medical-04-slt", "support-03-kal16")
UTTERANCE_GAP_S = 1.0
NEAR_END_MS = 1000  # a trigger this close to the scripted audio's end is about finalize: it keeps that distance


def resumes(capabilities: frozenset[str]) -> bool:
    """Whether the matrix judges resume on a target with these capabilities."""
    return all(c in capabilities for c in RESUME_NEEDS)


def case_needs(case: FaultCase, capabilities: frozenset[str]) -> tuple[str, ...]:
    """What one case needs of a target with ``capabilities`` (it is left out otherwise): the row's
    own needs, a server the harness starts for process faults, and, where the matrix judges
    resume, resume itself and the scripted engine of scripted rows."""
    needs = list(case.needs)
    if case.own_server or case.layer == "process":  # a server the harness starts, kills or configures
        needs.append("embedded_server")
    if resumes(capabilities):
        needs += RESUME_NEEDS
        if case.engine == "scripted":
            needs.append("scripted_engine")
    return tuple(dict.fromkeys(needs))


def for_target(case: FaultCase, capabilities: frozenset[str], audio_ms_of: Any) -> FaultCase:
    """The case as it runs on a target with ``capabilities``: unchanged where the matrix judges
    resume or the target has the scripted engine; otherwise on the target's own engine over
    :data:`UTTERANCES`, with triggers near the scripted audio's end moved to the same distance
    before the new end (``audio_ms_of(case)`` is the new audio's length in ms)."""
    if resumes(capabilities) or (case.engine == "scripted" and "scripted_engine" in capabilities):
        return case
    adapted = replace(case, engine="pocketsphinx", utterances=UTTERANCES, audio_s=None, metadata={})
    old_end = (case.audio_s or 0) * 1000
    new_end = audio_ms_of(adapted)
    if case.engine != "scripted" or not old_end:
        return adapted
    steps = []
    for s in case.steps:
        if isinstance(s.at, AfterAudio) and s.at.ms > old_end - NEAR_END_MS:
            s = replace(s, at=_at(new_end - (old_end - s.at.ms)))
        steps.append(s)
    return replace(adapted, steps=tuple(steps))


__all__ = ["CaseSkipped", "FaultCase", "LONG_FIXTURE", "RESUME_NEEDS", "SCRIPT", "UTTERANCES", "case_needs", "cases",
           "for_target", "resumes"]

"""Fault schedules as data: TOML and Python values, triggers, targets, and refusals that name the
line and the known names."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import ClassVar

import pytest

from harness.faults.base import Fault, FaultContext, FaultError, fault_type, known_faults
from harness.faults.schedule import (
    AfterAudio,
    AtConnect,
    AtFinalize,
    AtResult,
    Every,
    First,
    Nth,
    Schedule,
    ScheduleError,
    Step,
    Tagged,
)
from harness.faults.scheduler import HistoryProgress, SessionEnded, run_step
from harness.faults.toxics import Latency
from harness.faults.ws_faults import VendorError
from harness.history import History

EXAMPLE = """\
# close every second connection after 2 s of audio
[[fault]]
type = "vendor_error"
preset = "deepgram-net-0000"
at = { audio_ms = 2000 }
target = { every = 2 }

[[fault]]
type = "latency"
latency_ms = 300
stream = "both"
at = "finalize"
duration_ms = 1500
"""


def test_toml_and_python_values_give_the_same_schedule():
    from_toml = Schedule.from_toml(EXAMPLE, "example.toml")
    from_python = Schedule([
        Step(VendorError(preset="deepgram-net-0000"), AfterAudio(2000), target=Every(2)),
        Step(Latency(latency_ms=300, stream="both"), AtFinalize(), duration_ms=1500),
    ])
    assert from_toml.describe() == from_python.describe()
    assert Schedule.from_data({"fault": from_python.describe()}).describe() == from_python.describe()
    first, second = from_toml.steps
    assert isinstance(first.fault, VendorError) and first.fault.preset == "deepgram-net-0000"
    assert first.at == AfterAudio(2000) and first.target == Every(2) and first.duration_ms is None
    assert second.fault.params() == {"latency_ms": 300, "jitter_ms": 0, "stream": "both"}


def test_defaults_are_at_connect_on_every_connection():
    (step,) = Schedule.from_data([{"type": "stall"}]).steps
    assert step.at == AtConnect() and step.target.matches(1) and step.target.matches(7)


@pytest.mark.parametrize("target,hits", [
    (Nth(2), [2]), (Every(2), [2, 4, 6]), (First(3), [1, 2, 3]),
])
def test_targets_pick_connections_by_index(target, hits):
    assert [i for i in range(1, 7) if target.matches(i)] == hits


def test_tag_target_and_per_connection_copies():
    sched = Schedule([Step(VendorError(code=1011, reason="x"), target=Tagged("relay-a"))])
    assert sched.for_connection(1, ["relay-b"]) == []
    a, b = sched.for_connection(1, ["relay-a"]), sched.for_connection(2, ["relay-a"])
    assert a[0].fault is not b[0].fault and a[0].fault is not sched.steps[0].fault  # a fault runs once


class _P:
    def __init__(self, audio_bytes=0, results=0, finalized=False):
        self.audio_bytes, self.results, self.finalized = audio_bytes, results, finalized
        self.bytes_per_ms, self.elapsed_ms = 32, 0.0


def test_triggers_read_progress():
    assert not AfterAudio(2000).reached(_P(audio_bytes=63_999)) and AfterAudio(2000).reached(_P(audio_bytes=64_000))
    assert not AtResult(3).reached(_P(results=2)) and AtResult(3).reached(_P(results=3))
    assert not AtFinalize().reached(_P()) and AtFinalize().reached(_P(finalized=True))


@pytest.mark.parametrize("text,line,names", [
    ('[[fault]]\ntype = "stall"\n\n[[fault]]\ntype = "latncy"\n', 5, ["latency", "vendor_error", "kill9"]),
    ('[[fault]]\ntype = "latency"\nlatency_ms = 300\njiter_ms = 4\n', 4, ["jitter_ms", "latency_ms", "stream"]),
    ('[[fault]]\ntype = "latency"\nat = { audio_msec = 3 }\n', 3, ["audio_ms", "finalize", "result"]),
    ('[[fault]]\ntype = "latency"\n\n  target = "some"  # comment\n', 4, ["every", "nth", "tag"]),
    ('\n[[faults]]\ntype = "latency"\n', 2, ["[[fault]]"]),
    ('[[fault]]\ntype = "latency"\nlatency_ms = "300"\n', 3, ["latency_ms must be int"]),
    ('[[fault]]\ntype = "vendor_error"\npreset = "nope"\n', 3, ["deepgram-net-0000", "speechmatics-quota-exceeded"]),
    ('[[fault]]\ntype = "kill9"\nduration_ms = 4\n', 3, ["takes no duration_ms"]),
    ('[[fault]]\ntype = "latency"\nat = { result = 0 }\n', 3, [">= 1"]),
    ('[[fault]]\nlatency_ms = 3\n', 1, ["no 'type'", "latency"]),
])
def test_bad_schedules_are_refused_naming_the_line_and_the_known_names(text, line, names):
    with pytest.raises(ScheduleError) as err:
        Schedule.from_toml(text, "bad.toml")
    message = str(err.value)
    assert message.startswith(f"bad.toml:{line}:"), message
    for name in names:
        assert name in message, message


def test_not_toml_and_missing_file_are_refused(tmp_path):
    with pytest.raises(ScheduleError, match="not valid TOML"):
        Schedule.from_toml("[[fault]\n", "x.toml")
    with pytest.raises(ScheduleError, match="cannot read fault schedule"):
        Schedule.load(tmp_path / "missing.toml")


def test_registry_knows_every_layer_and_refuses_a_taken_name():
    names = known_faults()
    assert {"latency", "down", "ws_drop", "vendor_error", "refuse_handshake", "stall", "cut", "drop_final",
            "duplicate_final", "accept_close", "kill9", "freeze", "sigterm_restart"} <= set(names)
    assert fault_type("latency") is Latency
    with pytest.raises(KeyError, match="known faults: .*latency"):
        fault_type("latencyy")
    with pytest.raises(TypeError, match="taken"):
        @dataclass
        class Other(Fault):
            name: ClassVar[str] = "latency"


def test_a_missing_layer_is_named():
    with pytest.raises(FaultError, match="'toxiproxy' layer.*it has \\['wsproxy'\\]"):
        asyncio.run(Latency().start(FaultContext([], {"wsproxy": object()})))


@dataclass
class _Recorded(Fault):
    """A test double of a layer's fault: records its window, touches nothing."""

    name: ClassVar[str] = "test_recorded"
    layer: ClassVar[str] = "test"
    level: int = 1

    async def _start(self, ctx: FaultContext) -> None:
        self._open(ctx)


async def test_run_step_waits_for_its_trigger_and_stops_at_the_end_of_the_session():
    h = History(session_id="s")
    done = asyncio.Event()
    step = Step(_Recorded(level=3), AfterAudio(100))
    task = asyncio.create_task(run_step(step, FaultContext([h], {"test": True}), HistoryProgress(h), done))
    await asyncio.sleep(0.05)
    assert h.faults == []  # 100 ms of audio not sent yet
    h.add("audio_sent", offset=0, length=3200)
    for _ in range(200):
        if h.faults:
            break
        await asyncio.sleep(0.01)
    assert [w.kind for w in h.faults] == ["test_recorded"] and h.faults[0].params == {"level": 3}
    assert h.faults[0].end_ns is None
    done.set()
    await asyncio.wait_for(task, 5)
    assert h.faults[0].end_ns is not None


async def test_run_step_says_when_the_session_ended_first():
    h = History(session_id="s")
    done = asyncio.Event()
    done.set()
    with pytest.raises(SessionEnded, match="audio_ms"):
        await run_step(Step(_Recorded(), AfterAudio(100)), FaultContext([h], {"test": True}), HistoryProgress(h), done)
    assert h.faults == []

"""Load shapes as data: a staircase of (until, users, spawn rate) stages, and the capacity judge.

``harness load --ramp`` and ``--find-capacity`` describe their shape here and hand it to the
Locust shape class (``shape_steps.py``) as JSON in ``$HARNESS_LOAD_SHAPE``. The capacity judge
reads the raw samples of each finished step and stops the test once a step broke. No Locust here.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness.load.samples import StepCriteria, judge_step, read_samples

SHAPE_ENV = "HARNESS_LOAD_SHAPE"


@dataclass(frozen=True)
class Stage:
    until_s: float  # run time at which this stage ends
    users: int
    spawn_rate: float


@dataclass(frozen=True)
class Judge:
    """Capacity search: judge each stage's samples once they are in, stop at the first broken one."""

    samples_dir: str
    steps_file: str
    criteria: StepCriteria = field(default_factory=StepCriteria)
    settle_s: float = 5.0  # leave out the start of a step: users still spawning
    delay_s: float = 8.0  # wait this long after a step ends: sessions write their samples when they end


@dataclass(frozen=True)
class Shape:
    stages: tuple[Stage, ...]
    judge: Judge | None = None

    def __post_init__(self) -> None:
        if not self.stages:
            raise ValueError("a load shape needs at least one stage")
        last = 0.0
        for s in self.stages:
            if not s.until_s > last:
                raise ValueError(f"stage ends must increase, got {s.until_s} after {last}")
            if s.users < 0 or not s.spawn_rate > 0:
                raise ValueError(f"bad stage {s}: users >= 0 and spawn rate > 0 needed")
            last = s.until_s

    @property
    def total_s(self) -> float:
        return self.stages[-1].until_s

    def stage_index(self, run_time: float) -> int | None:
        """The stage running at ``run_time``, or None once the shape is over."""
        for i, s in enumerate(self.stages):
            if run_time < s.until_s:
                return i
        return None

    def window(self, index: int) -> tuple[float, float]:
        start = self.stages[index - 1].until_s if index else 0.0
        return start, self.stages[index].until_s

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Shape:
        data = json.loads(text)
        judge = data.get("judge")
        if judge is not None:
            judge = Judge(**{**judge, "criteria": StepCriteria(**judge.get("criteria", {}))})
        return cls(tuple(Stage(**s) for s in data["stages"]), judge)


def ramp(users: int, duration_s: float, steps: int, spawn_rate: float, hold_s: float = 0.0) -> Shape:
    """Users up in ``steps`` equal steps across ``duration_s`` (the last step reaches ``users``),
    then ``hold_s`` more at the top (the drain: users start no new session then)."""
    if steps < 1 or users < 1:
        raise ValueError("a ramp needs at least one step and one user")
    step_s = duration_s / steps
    stages = [Stage(round(step_s * (i + 1), 3), max(1, math.ceil(users * (i + 1) / steps)), spawn_rate)
              for i in range(steps)]
    if hold_s > 0:
        stages.append(Stage(round(duration_s + hold_s, 3), users, spawn_rate))
    return Shape(tuple(stages))


def capacity_steps(start_users: int, step_users: int, max_users: int, step_s: float, spawn_rate: float,
                   max_time_s: float, judge: Judge) -> Shape:
    """start, start+step, … up to ``max_users``, ``step_s`` each, no longer than ``max_time_s`` in all."""
    if start_users < 1 or step_users < 1 or max_users < start_users:
        raise ValueError(f"bad capacity steps: start {start_users}, step {step_users}, max {max_users}")
    if not step_s > judge.settle_s:
        raise ValueError(f"a step ({step_s:g} s) must be longer than its settle time ({judge.settle_s:g} s)")
    stages, users, t = [], start_users, 0.0
    while users <= max_users and t + step_s <= max_time_s + 1e-9:
        t += step_s
        stages.append(Stage(round(t, 3), users, spawn_rate))
        users += step_users
    if not stages:
        raise ValueError(f"--max-time {max_time_s:g} s is shorter than one step ({step_s:g} s)")
    return Shape(tuple(stages), judge)


@dataclass
class StepResult:
    step: int
    users: int
    start: float  # wall clock
    end: float
    verdict: str  # held | broke | unknown
    why: str
    figures: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"step": self.step, "users": self.users, "verdict": self.verdict, "why": self.why,
                "start": self.start, "end": self.end, **self.figures}


def judge_window(judge: Judge, index: int, users: int, start: float, end: float) -> StepResult:
    """Judge one step from the samples on disk measured in ``[start + settle, end)`` (wall clock)."""
    samples = read_samples(judge.samples_dir).window(start + judge.settle_s, end)
    verdict, why, figures = judge_step(samples, judge.criteria)
    return StepResult(index, users, start, end, verdict, why, figures)


def _append(path: str | Path, line: dict[str, Any]) -> None:
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(line) + "\n")


def mark_start(path: str | Path, wall_start: float) -> None:
    """The shape's time zero on the wall clock: stage windows are relative to it."""
    _append(path, {"kind": "start", "wall_start": wall_start})


def append_step(path: str | Path, result: StepResult) -> None:
    _append(path, {"kind": "step", **result.to_dict()})


def read_steps(path: str | Path) -> tuple[float | None, list[dict[str, Any]]]:
    """(wall start, the steps the shape judged while the test ran)."""
    path = Path(path)
    if not path.is_file():
        return None, []
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    start = next((ln["wall_start"] for ln in lines if ln.get("kind") == "start"), None)
    return start, [ln for ln in lines if ln.get("kind") == "step"]


def judge_all(shape: Shape, wall_start: float, run_end: float) -> list[StepResult]:
    """Every step that ran, judged after the run with all samples in. A step the test stopped
    early is judged on the part that ran, if that is longer than its settle time."""
    judge = shape.judge
    assert judge is not None
    out = []
    for i, stage in enumerate(shape.stages):
        start, end = shape.window(i)
        w0, w1 = wall_start + start, min(wall_start + end, run_end)
        if w1 - w0 <= judge.settle_s:
            break
        result = judge_window(judge, i, stage.users, w0, w1)
        if w1 < wall_start + end:
            result.why += f" (step cut short after {w1 - w0:.0f} of {end - start:.0f} s)"
        out.append(result)
    return out


def largest_held(results: list[dict[str, Any]]) -> tuple[int | None, dict[str, Any] | None]:
    """The users of the last step in the unbroken run of held steps from the first, and the first
    step that did not hold (None if every step held)."""
    best = None
    for r in sorted(results, key=lambda r: r["step"]):
        if r["verdict"] != "held":
            return best, r
        best = r["users"]
    return best, None

"""Load shapes (ramp, capacity steps) and the soak memory judge."""

from __future__ import annotations

import json

import pytest

from harness.checks.verdict import Status
from harness.load.samples import StepCriteria
from harness.load.soak import GrowthLimits, judge_growth, linear_fit
from harness.load.steps import Judge, Shape, Stage, capacity_steps, judge_all, largest_held, ramp


def test_ramp_reaches_the_users_in_equal_steps_then_holds():
    shape = ramp(users=50, duration_s=60, steps=5, spawn_rate=10, hold_s=15)
    assert [s.users for s in shape.stages] == [10, 20, 30, 40, 50, 50]
    assert [s.until_s for s in shape.stages] == [12, 24, 36, 48, 60, 75]
    assert shape.stage_index(0) == 0 and shape.stage_index(59.9) == 4 and shape.stage_index(75) is None
    assert Shape.from_json(shape.to_json()) == shape


def test_capacity_steps_are_bounded_by_users_and_time(tmp_path):
    judge = Judge(str(tmp_path), str(tmp_path / "steps.jsonl"), StepCriteria(300.0), settle_s=5, delay_s=8)
    shape = capacity_steps(10, 10, 1000, 20, 5, max_time_s=100, judge=judge)
    assert [s.users for s in shape.stages] == [10, 20, 30, 40, 50]  # 5 steps fit in 100 s
    shape = capacity_steps(10, 10, 30, 20, 5, max_time_s=600, judge=judge)
    assert [s.users for s in shape.stages] == [10, 20, 30]
    again = Shape.from_json(shape.to_json())
    assert again.judge.criteria.final_p95_ms == 300.0 and again == shape
    with pytest.raises(ValueError, match="shorter than one step"):
        capacity_steps(10, 10, 30, 20, 5, max_time_s=10, judge=judge)
    with pytest.raises(ValueError, match="settle"):
        capacity_steps(10, 10, 30, 4, 5, max_time_s=100, judge=judge)


def test_stages_must_move_forward():
    with pytest.raises(ValueError, match="increase"):
        Shape((Stage(10, 1, 1), Stage(10, 2, 1)))


def test_largest_held_stops_at_the_first_step_that_did_not_hold():
    steps = [{"step": 0, "users": 10, "verdict": "held"}, {"step": 1, "users": 20, "verdict": "held"},
             {"step": 2, "users": 30, "verdict": "broke", "why": "p95"}, {"step": 3, "users": 40, "verdict": "held"}]
    held, broke = largest_held(steps)
    assert held == 20 and broke["users"] == 30
    assert largest_held(steps[:2]) == (20, None)
    assert largest_held([{"step": 0, "users": 1, "verdict": "broke"}])[0] is None


def test_judge_all_reads_each_step_window_from_the_samples(tmp_path):
    lines = []
    for t in range(0, 40):  # step 0: 0..20 s fast finals; step 1: 20..40 s slow ones
        lines.append({"kind": "request", "t": 1000.0 + t + 0.5, "name": "final", "ms": 5.0 if t < 20 else 800.0})
    (tmp_path / "samples-1.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    judge = Judge(str(tmp_path), str(tmp_path / "steps.jsonl"), StepCriteria(500.0, min_finals=5), settle_s=5)
    shape = capacity_steps(5, 5, 20, 20, 5, max_time_s=60, judge=judge)
    results = judge_all(shape, wall_start=1000.0, run_end=1040.0)
    assert [r.verdict for r in results] == ["held", "broke"]  # step 2 never ran
    assert results[0].figures["finals"] == 15  # the settle time is left out


def rss(values_mb, every_s=2.0):
    return [{"t": 100.0 + i * every_s, "rss_bytes": int(v * 1024 * 1024)} for i, v in enumerate(values_mb)]


def test_linear_fit():
    slope, icpt = linear_fit([(0, 1), (1, 3), (2, 5)])
    assert slope == pytest.approx(2.0) and icpt == pytest.approx(1.0)
    with pytest.raises(ValueError):
        linear_fit([(1, 1)])


def test_flat_memory_after_warmup_passes_even_with_a_warmup_jump():
    values = [100, 140, 160] + [170 + (i % 3) * 0.5 for i in range(60)]  # 2 min at 2 s
    verdict, figures = judge_growth(rss(values), GrowthLimits(warmup_s=10))
    assert verdict.status is Status.PASS and abs(figures["slope_mb_per_min"]) < 1


def test_steady_growth_fails_with_the_slope_named():
    values = [100 + i * 0.5 for i in range(60)]  # 0.5 MB per 2 s = 15 MB/min
    verdict, figures = judge_growth(rss(values), GrowthLimits(warmup_s=10))
    assert verdict.status is Status.FAIL and figures["slope_mb_per_min"] == pytest.approx(15.0, rel=0.01)
    assert "grows without bound" in verdict.message and "MB/min" in verdict.message


def test_too_few_samples_or_none_is_unknown():
    verdict, _ = judge_growth(rss([100, 101, 102]), GrowthLimits(warmup_s=2, min_samples=6))
    assert verdict.status is Status.UNKNOWN and "run longer" in verdict.message
    verdict, _ = judge_growth([], errors=["ConnectError"])
    assert verdict.status is Status.UNKNOWN and "ConnectError" in verdict.message

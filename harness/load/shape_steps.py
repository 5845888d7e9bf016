"""Locust shape for ``harness load --ramp`` and ``--find-capacity``: a staircase read from
``$HARNESS_LOAD_SHAPE`` (see ``harness.load.steps``). Loaded next to the locustfile
(``-f harness/load/locustfile.py,harness/load/shape_steps.py``) only when a shape is wanted,
since Locust uses any shape class it finds.

With a capacity judge, each step is judged from the raw samples once its sessions have written
them (``delay_s`` after the step ends); the first step that broke stops the test.
"""

from __future__ import annotations

import logging
import os
import time

from locust import LoadTestShape

from harness.load.steps import SHAPE_ENV, Shape, append_step, judge_window, mark_start

log = logging.getLogger("harness.load")


class StaircaseShape(LoadTestShape):
    def __init__(self) -> None:
        super().__init__()
        text = os.environ.get(SHAPE_ENV)
        if not text:
            raise RuntimeError(f"{SHAPE_ENV} is not set: this shape is driven by `harness load --ramp/--find-capacity`")
        self.shape = Shape.from_json(text)
        self.wall_start: float | None = None
        self.judged = 0  # steps judged so far
        self.broke = False

    def tick(self) -> tuple[int, float] | None:
        run_time = self.get_run_time()
        if self.wall_start is None:  # the first tick comes as the test starts
            self.wall_start = time.time() - run_time
            if self.shape.judge is not None:
                mark_start(self.shape.judge.steps_file, self.wall_start)
        if self.shape.judge is not None:
            self._judge_due(run_time)
            if self.broke:
                return None
        index = self.shape.stage_index(run_time)
        if index is None:
            return None
        stage = self.shape.stages[index]
        return stage.users, stage.spawn_rate

    def _judge_due(self, run_time: float) -> None:
        judge = self.shape.judge
        assert judge is not None and self.wall_start is not None
        while self.judged < len(self.shape.stages) and not self.broke:
            start, end = self.shape.window(self.judged)
            last = self.judged == len(self.shape.stages) - 1
            # The last step is judged by `harness load` after the run, with every sample in.
            if last or run_time < end + judge.delay_s:
                return
            result = judge_window(judge, self.judged, self.shape.stages[self.judged].users,
                                  self.wall_start + start, self.wall_start + end)
            append_step(judge.steps_file, result)
            log.info("capacity step %d (%d users): %s: %s", result.step, result.users, result.verdict, result.why)
            self.judged += 1
            if result.verdict != "held":
                self.broke = True

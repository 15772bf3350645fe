"""Hooks that watch the clock: the time budget, and the warning for runs that would take days."""

from __future__ import annotations

import dataclasses
import logging

from byol.dist import from_rank0
from byol.schedules import warmup_steps
from byol.train.hooks.base import Hook, StepEvent
from byol.train.setup import Run
from byol.train.state import TrainState

log = logging.getLogger(__name__)


class TimeBudget(Hook):
    """Lays the lr and τ plan over the steps a time budget allows, and ends the run on time.

    The budget counts training time (``TrainState.elapsed``: a sitting's first step, which compiles,
    is not in it). The first estimate comes after 20 timed steps (3 more steps of warm-up are not
    timed), then again at every epoch end, from the pace since the last one. Each estimate re-lays
    the rest of the plan from the step it is made at (``Plan.relaid``): the warm-up is fixed
    in steps by the first, later ones stretch or shrink the cosine tail, and neither lr nor τ jumps.
    Under torchrun every rank takes rank 0's decisions (clocks differ), at steps all ranks agree on:
    each estimate, and each log step for the stop.
    """

    WARMUP_STEPS, TIMED_STEPS = 3, 20

    def __init__(self, run: Run, start_step: int):
        self.run, self.first_step = run, start_step
        self.mark: tuple[int, float] | None = None  # (step, elapsed) where timing began
        self.last: tuple[int, float] | None = None  # (step, elapsed) of the last estimate

    def after_step(self, event: StepEvent) -> None:
        state, info = event.state, self.run.info
        plan = state.plan
        if plan.budget_seconds is None:
            return
        if self.mark is None and event.step >= self.first_step + self.WARMUP_STEPS:
            self.mark = (event.step, state.elapsed())
        elif self.mark is not None and (
            (not plan.estimated and event.step >= self.mark[0] + self.TIMED_STEPS)
            or event.step % plan.steps_per_epoch == 0
        ):
            self._estimate(state)
        check = not info.distributed or event.step % self.run.cfg.run.log_every == 0
        if check and from_rank0(int(state.elapsed() >= state.plan.budget_seconds), info, self.run.device):
            state.plan = state.plan.ended_at(event.step)
            state.stop = True

    def _estimate(self, state: TrainState) -> None:
        plan, step, elapsed = state.plan, state.step, state.elapsed()
        # The pace of the last stretch (an epoch: its kNN and checkpoint included), if long enough to time.
        since = self.last if self.last is not None and step - self.last[0] >= self.TIMED_STEPS else self.mark
        per_step = (elapsed - since[1]) / max(step - since[0], 1)
        self.last = (step, elapsed)
        remaining = max(plan.budget_seconds - elapsed, 0.0)
        total = from_rank0(max(step + 1, step + int(remaining / per_step)), self.run.info, self.run.device)
        warmup = None if plan.estimated else warmup_steps(self.run.cfg.optim.warmup_epochs, plan.steps_per_epoch, total)
        state.plan = dataclasses.replace(plan.relaid(step, total, warmup), estimated=True)
        log.info(
            "time budget: %.3f s per step, %d steps in all (warm-up %d)", per_step, state.plan.total_steps,
            state.plan.warmup_steps,
        )  # fmt: skip


class LongRunWarning(Hook):
    """Says once, after the first timed steps, when a run of fixed length would take days here."""

    WARMUP_STEPS, TIMED_STEPS, DAY = 3, 5, 24 * 3600.0

    def __init__(self, run: Run, start_step: int):
        self.run, self.first_step, self.mark = run, start_step, None

    def after_step(self, event: StepEvent) -> None:
        state = event.state
        if state.plan.budget_seconds is not None or self.mark == "done":
            return
        if self.mark is None and event.step >= self.first_step + self.WARMUP_STEPS:
            self.mark = (event.step, state.elapsed())
        elif self.mark is not None and event.step >= self.mark[0] + self.TIMED_STEPS:
            per_step = (state.elapsed() - self.mark[1]) / (event.step - self.mark[0])
            remaining = per_step * (state.plan.total_steps - event.step)
            if remaining > self.DAY:
                hint = "; on a CPU, --preset cpu learns visibly in minutes" if self.run.device.type == "cpu" else ""
                log.warning(
                    "at %.1f s per step the %d steps left take about %.1f days on this machine%s",
                    per_step, state.plan.total_steps - event.step, remaining / self.DAY, hint,
                )  # fmt: skip
            self.mark = "done"

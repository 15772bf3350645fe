"""Hooks that watch the clock: the time budget, and the warning for runs that would take days."""

from __future__ import annotations

import dataclasses
import logging
import statistics

from byol.dist import from_rank0
from byol.schedules import Plan, warmup_steps
from byol.train.hooks.base import Hook, StepEvent
from byol.train.setup import Run
from byol.train.state import Stop, TrainState

log = logging.getLogger(__name__)


class TimeBudget(Hook):
    """Lays the lr and τ plan over the steps a time budget allows, and ends the run on time.

    The budget counts training time (``TrainState.elapsed``: a sitting's first step, which compiles,
    is not in it). The first estimate comes after 20 timed steps (3 more steps of warm-up are not
    timed), then again at every epoch end and every fiftieth of the plan. Each estimate re-lays the
    rest of the plan from the step it is made at (``Plan.relaid``): the warm-up is fixed in steps by
    the first, later ones stretch or shrink the cosine tail, and neither lr nor τ jumps.

    A slowdown costs the steps it took, not the shape of the schedule (a stall once laid the tail
    short, the lr decayed to about 0 and stayed there when the speed came back: docs/results/demo-cpu/):

    - the pace is the median of the last ``PACE_WINDOW`` stretches between estimates, so one slow
      stretch (a stall, a kNN pass, a checkpoint) does not shorten the plan, and a lasting change
      does after three;
    - the lr's cosine is held to the clock: where the plan's decay is off the share of the budget's
      decay time spent by more than ``OFF_CLOCK`` (ahead: the plan was laid short, then the speed came
      back; behind: a stall took time and no steps), the lr goes to where the clock puts it over a
      short ramp (``Plan.rewarmed``), without a jump; τ never falls.

    Under torchrun every rank takes rank 0's decisions (clocks differ), at steps all ranks agree on:
    each estimate, and each log step for the stop.
    """

    WARMUP_STEPS, TIMED_STEPS, PACE_WINDOW, ESTIMATES, OFF_CLOCK = 3, 20, 5, 50, 0.02

    def __init__(self, run: Run, start_step: int):
        self.run, self.first_step = run, start_step
        self.mark: tuple[int, float] | None = None  # (step, elapsed) where timing began
        self.last: tuple[int, float] | None = None  # (step, elapsed) of the last estimate
        self.paces: list[float] = []  # seconds per step of each stretch between estimates
        self.decay_start: float | None = None  # training seconds at which the clock's cosine starts

    def after_step(self, event: StepEvent) -> Stop | None:
        state, info = event.state, self.run.info
        plan = state.plan
        if plan.budget_seconds is None:
            return None
        if self.mark is None and event.step >= self.first_step + self.WARMUP_STEPS:
            self.mark = (event.step, self._clock(state))
        elif self.mark is not None and (
            (not plan.estimated and event.step >= self.mark[0] + self.TIMED_STEPS)
            or event.step % plan.steps_per_epoch == 0
            or (plan.estimated and event.step % max(self.TIMED_STEPS, plan.total_steps // self.ESTIMATES) == 0)
        ):
            self._estimate(state)
        check = not info.distributed or event.step % self.run.cfg.run.log_every == 0
        if check and from_rank0(int(state.elapsed() >= state.plan.budget_seconds), info, self.run.device):
            state.plan = state.plan.ended_at(event.step)
            return Stop(f"the time budget of {state.plan.budget_seconds / 60:g} minutes is spent")
        return None

    def _estimate(self, state: TrainState) -> None:
        plan, step = state.plan, state.step
        elapsed = self._clock(state)
        since = self.last or self.mark
        if step - since[0] >= self.TIMED_STEPS or not self.paces:  # a shorter stretch is timed with the next
            self.paces = [*self.paces, (elapsed - since[1]) / max(step - since[0], 1)][-self.PACE_WINDOW :]
            self.last = (step, elapsed)
        per_step = statistics.median(self.paces)
        remaining = max(plan.budget_seconds - elapsed, 0.0)
        total = max(step + 1, step + int(remaining / per_step))
        if not plan.estimated:
            warmup = warmup_steps(self.run.cfg.optim.warmup_epochs, plan.steps_per_epoch, total)
            state.plan = dataclasses.replace(plan.relaid(step, total, warmup), estimated=True)
        else:
            state.plan = self._relaid_to_the_clock(plan, step, total, elapsed, per_step)
        say = log.info if not plan.estimated or step % plan.steps_per_epoch == 0 else log.debug  # the epoch's
        say(
            "time budget: %.3f s per step (median of %d stretches), %d steps in all (warm-up %d)", per_step,
            len(self.paces), state.plan.total_steps, state.plan.warmup_steps,
        )  # fmt: skip

    def _clock(self, state: TrainState) -> float:
        """Rank 0's training seconds, on every rank: whatever is decided from them, every rank decides alike."""
        return from_rank0(round(state.elapsed() * 1000), self.run.info, self.run.device) / 1000

    def _relaid_to_the_clock(self, plan: Plan, step: int, total: int, elapsed: float, per_step: float) -> Plan:
        """The rest of the plan over ``total`` steps, its lr's cosine brought back to the clock's."""
        if step < plan.warmup_steps:
            return plan.relaid(step, total)
        budget, progress = plan.budget_seconds, plan.decay_progress(step)
        if self.decay_start is None:  # the first look after the warm-up: the clock starts level with the plan
            self.decay_start = (elapsed - progress * budget) / max(1.0 - progress, 1e-9)
        span = max(budget - self.decay_start, 1e-9)
        on_clock = min(max((elapsed - self.decay_start) / span, 0.0), 1.0)
        if abs(progress - on_clock) <= self.OFF_CLOCK or total - step < 2 * self.TIMED_STEPS:
            return plan.relaid(step, total)
        ramp = min(max(self.TIMED_STEPS, (total - step) // 20), (total - step) // 2)
        at_ramp_end = min(on_clock + ramp * per_step / span, 1.0)
        tau_at_end = max(plan.tau_progress(step), min((elapsed + ramp * per_step) / budget, 1.0))
        log.info("time budget: the lr's cosine is at %.2f, the clock at %.2f: back to the clock over %d steps",
                 progress, on_clock, ramp)  # fmt: skip
        return plan.rewarmed(step, total, step + ramp, at_ramp_end, tau_at_end)


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

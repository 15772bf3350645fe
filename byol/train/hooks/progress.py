"""What the user sees and calls during training: the progress bar and an ``on_step`` callback."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from byol.train.hooks.base import Hook, StepEvent
from byol.train.hooks.metrics import MetricsLog
from byol.train.state import TrainState


class ProgressBar(Hook):
    """A tqdm bar with the last logged figures: over the steps of a run of fixed length, over the
    training seconds of a time budget (with the time left; its step count is an estimate)."""

    runs_after = ("TimeBudget", "MetricsLog")  # the plan as re-laid this step; the figures of this step's line

    def __init__(self, state: TrainState, metrics: MetricsLog | None = None):
        from tqdm import tqdm

        self.budget = state.plan.budget_seconds
        options = dict(dynamic_ncols=True, mininterval=1 if sys.stderr.isatty() else 30)
        if self.budget is None:
            self.bar = tqdm(total=state.plan.total_steps, initial=state.step, unit="step", **options)
        else:
            self.bar = tqdm(
                total=round(self.budget), initial=min(round(state.elapsed()), round(self.budget)), unit="s",
                bar_format="{desc}{percentage:3.0f}%|{bar}| {n:.0f}/{total_fmt} s of training{postfix}",
                desc="time budget ", **options,
            )  # fmt: skip
        self.metrics = metrics
        self.shown_logs: dict[str, Any] | None = None
        self.figures: dict[str, str] = {}

    def after_step(self, event: StepEvent) -> None:
        state = event.state
        logs = self.metrics.last_line if self.metrics is not None else None
        if logs is not None and logs is not self.shown_logs:
            self.shown_logs = logs
            ips = logs["images_per_sec"]
            self.figures = dict(
                ep=f"{logs['epoch']:.2f}", loss="skipped" if logs["loss"] is None else f"{logs['loss']:.3f}",
                lr=f"{logs['lr']:.2e}", tau=f"{logs['tau']:.4f}", ips="-" if ips is None else f"{ips:.0f}",
            )  # fmt: skip
        if self.budget is None:
            if self.bar.total != state.plan.total_steps:
                self.bar.total = state.plan.total_steps
                self.bar.refresh()
            self.bar.set_postfix(refresh=False, **self.figures)
            self.bar.update(1)
            return
        elapsed = min(state.elapsed(), self.budget)
        left = max(self.budget - elapsed, 0.0)
        self.bar.set_postfix_str(
            f"{int(left // 60)}:{int(left % 60):02d} left, step {state.step}/~{state.plan.total_steps}"
            + "".join(f", {k}={v}" for k, v in self.figures.items()),
            refresh=False,
        )
        self.bar.update(elapsed - self.bar.n)

    def close(self) -> None:
        self.bar.close()


class StepCallback(Hook):
    def __init__(self, fn: Callable[[int], None]):
        self.fn = fn

    def after_step(self, event: StepEvent) -> None:
        self.fn(event.step)

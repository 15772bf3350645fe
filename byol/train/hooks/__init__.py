"""The periodic concerns of the training loop, one class each.

After every optimiser step the loop hands each hook a ``StepEvent``; a hook decides for itself
whether this step is its step, and returns a ``Stop`` (with its reason) to end the run after it
(``NonFiniteGuard`` raises instead: a run that no longer steps is an error, not a stop).
What a hook observes stays in it (``MetricsLog.last_line``, ``KnnMonitor.last``); a hook that reads
another is given it and names it in ``runs_after``, and ``check_order`` refuses an order that breaks
that. In the order the loop calls them (``default_hooks``):

- ``Preemption``: after SIGTERM, SIGINT or SIGUSR1, stops the run at the step it is at (checkpointed next).
- ``TimeBudget``: with ``--time-budget``, lays the schedule over the steps the budget allows
  (estimated from measured speed) and stops the run when the time is up.
- ``NonFiniteGuard``: stops the run when more than ``run.max_skipped_steps`` steps in a row were
  skipped for a non-finite loss or gradient (looked at every step on a CPU, every
  ``max_skipped_steps`` steps on a GPU, without waiting for the device).
- ``OnlineClassifierHook``: trains the online linear classifier beside the run (labelled data).
- ``MetricsLog``: loss, lr, τ, speed, collapse diagnostics and the online classifier's accuracy
  every ``run.log_every`` steps and at the last, to metrics.jsonl and TensorBoard.
- ``CollapseWatch``: one warning at the first metrics line that looks collapsed.
- ``LongRunWarning``: says once when a run of fixed length would take days on this machine.
- ``KnnMonitor``: kNN accuracy of a held-out part of a labelled training set, every ``knn_every`` epochs.
- ``CheckpointCadence``: a checkpoint at each epoch end, every ``checkpoint_every_minutes``, and at the end.
- ``ProgressBar``: the tqdm bar.
- ``StepCallback``: a user's ``on_step(step)`` (tests interrupt runs with it).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from byol.train.hooks.base import Hook, StepEvent, check_order
from byol.train.hooks.checkpointing import CheckpointCadence
from byol.train.hooks.guard import NonFiniteGuard
from byol.train.hooks.knn import KnnMonitor, monitor_split
from byol.train.hooks.metrics import CollapseWatch, MetricsLog, OnlineClassifierHook
from byol.train.hooks.preemption import Preemption
from byol.train.hooks.progress import ProgressBar, StepCallback
from byol.train.hooks.timing import LongRunWarning, TimeBudget
from byol.train.metrics_file import MetricsWriter
from byol.train.setup import Run
from byol.train.signals import SignalCatcher
from byol.train.state import TrainState


def results(hooks: list[Hook]) -> tuple[float, dict[str, float]]:
    """What the run's result reports of its hooks' observations: the last logged mean loss
    (``MetricsLog``) and the last kNN figures (``KnnMonitor``)."""
    metrics = next((h for h in hooks if isinstance(h, MetricsLog)), None)
    knn = next((h for h in hooks if isinstance(h, KnnMonitor)), None)
    return (metrics.final_loss if metrics is not None else math.nan), (dict(knn.last) if knn is not None else {})


def default_hooks(
    run: Run,
    state: TrainState,
    progress: bool = True,
    on_step: Callable[[int], None] | None = None,
    signals: SignalCatcher | None = None,
) -> list[Hook]:
    """The hooks of ``byol pretrain``, in the order they run after each step (``check_order`` holds what
    each reads of another: ``Hook.runs_after``)."""
    logger = MetricsWriter(run.run_dir, enabled=run.info.is_main)
    # What ends the run first: then the metrics of its last step are logged, and the step checkpointed.
    probe = OnlineClassifierHook(run) if OnlineClassifierHook.wanted(run) else None
    hooks: list[Hook] = [Preemption(run, signals)] if signals is not None else []
    hooks.append(TimeBudget(run, state.step))
    hooks.append(NonFiniteGuard(run))
    if probe is not None:
        hooks.append(probe)  # before the metrics line that reports its accuracy
    metrics = MetricsLog(run, logger, state.step, probe)
    hooks += [metrics, CollapseWatch(metrics)]
    if run.info.is_main:
        hooks.append(LongRunWarning(run, state.step))
    if KnnMonitor.wanted(run):
        hooks.append(KnnMonitor(run, logger))
    hooks.append(CheckpointCadence(run))
    if progress and run.info.is_main:
        hooks.append(ProgressBar(state, metrics))
    if on_step is not None:
        hooks.append(StepCallback(on_step))
    return hooks


__all__ = [
    "CheckpointCadence",
    "CollapseWatch",
    "Hook",
    "KnnMonitor",
    "LongRunWarning",
    "MetricsLog",
    "NonFiniteGuard",
    "OnlineClassifierHook",
    "Preemption",
    "ProgressBar",
    "StepCallback",
    "StepEvent",
    "TimeBudget",
    "check_order",
    "default_hooks",
    "results",
    "monitor_split",
]

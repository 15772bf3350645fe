"""The periodic concerns of the training loop, one class each.

After every optimiser step the loop hands each hook a ``StepEvent``; a hook decides for itself
whether this step is its step. In the order the loop calls them:

- ``TimeBudget``: with ``--time-budget``, lays the schedule over the steps the budget allows
  (estimated from measured speed) and stops the run when the time is up.
- ``MetricsLog``: loss, lr, τ, speed, collapse diagnostics and the online classifier's accuracy
  every ``run.log_every`` steps and at the last (the only host syncs), to metrics.jsonl and TensorBoard.
- ``LongRunWarning``: says once when a run of fixed length would take days on this machine.
- ``KnnMonitor``: kNN accuracy of a held-out part of a labelled training set, every ``knn_every`` epochs.
- ``Checkpointer``: a checkpoint at each epoch end, every ``checkpoint_every_minutes``, and at the end.
- ``ProgressBar``: the tqdm bar.
- ``StepCallback``: a user's ``on_step(step)`` (tests interrupt runs with it).
"""

from __future__ import annotations

import functools
import logging
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from byol import faults
from byol.data.loader import TrainData, seeded_generator
from byol.dist import all_reduce_mean, from_rank0
from byol.errors import ByolError
from byol.eval.features import extract_features
from byol.eval.knn import knn_accuracy
from byol.train import checkpoint as ckpt_io
from byol.train.engine import StepResult
from byol.train.monitor import COLLAPSE_RATIO, MetricsLogger, effective_rank, projection_std
from byol.train.setup import Run
from byol.train.state import TrainState, checkpoint_state, warmup_steps

log = logging.getLogger(__name__)


@dataclass
class StepEvent:
    """What one optimiser step leaves for the hooks."""

    state: TrainState  # ``state.step`` is the number of steps done, this one included
    lr: float
    tau: float
    result: StepResult
    labels: torch.Tensor | None  # of the last micro-batch, whose outputs ``result`` holds

    @property
    def step(self) -> int:
        return self.state.step

    @property
    def last(self) -> bool:
        return self.state.finished


class Hook:
    """A periodic concern: ``after_step`` is called after every step, ``close`` once at the end."""

    def after_step(self, event: StepEvent) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class MetricsLog(Hook):
    """Training figures every ``log_every`` steps (and at the last step), averaged over all ranks.

    The losses, the online classifier's hits and the steps skipped for a non-finite loss or gradient
    are counted on the device in between. At a log step the counters and the batch's outputs are
    copied to the host without waiting (``_Pending``); the line is written once the copy has landed,
    a step or two later (at once on a CPU), and the collapse diagnostics are computed there, on the
    host: logging never stalls the device. More than ``run.max_skipped_steps`` skipped steps in a
    row stop the run with a one-line error naming the last good checkpoint; the first
    collapsed-looking batch gets one warning.
    """

    def __init__(self, run: Run, logger: MetricsLogger, start_step: int):
        self.run, self.logger, self.log_every = run, logger, run.cfg.run.log_every
        zeros = lambda dtype: torch.zeros((), device=run.device, dtype=dtype)  # noqa: E731
        self.loss_sum, self.good = zeros(torch.float32), zeros(torch.long)
        self.skipped, self.streak, self.longest_streak = zeros(torch.long), zeros(torch.long), zeros(torch.long)
        self.correct = zeros(torch.long)
        self.labelled = 0
        self.since: tuple[float, int] | None = None  # (training seconds, timed steps) at the last line
        self.pending: _Pending | None = None
        self.collapse_warned = False

    def after_step(self, event: StepEvent) -> None:
        run, result = self.run, event.result
        if self.since is None:
            self.since = (event.state.elapsed(), event.state.timed_steps)
        skipped = result.skipped if result.skipped is not None else torch.zeros((), dtype=torch.bool, device=run.device)
        self.loss_sum += torch.where(skipped, 0.0, result.loss)
        self.good += ~skipped
        self.skipped += skipped
        self.streak = (self.streak + 1) * skipped
        self.longest_streak = torch.maximum(self.longest_streak, self.streak)
        if run.classifier is not None and event.labels is not None:
            y = event.labels.to(run.device, non_blocking=True)
            self.correct += run.classifier.step(event.result.output.representation_view1, y)
            self.labelled += len(y)
        if self.pending is not None and (event.last or self.pending.ready()):
            self._write(self.pending, event.state)
        if event.step % self.log_every == 0 or event.step == event.state.schedule.total_steps:
            self._start(event)
            if event.last or self.run.device.type != "cuda":
                self._write(self.pending, event.state)

    def _start(self, event: StepEvent) -> None:
        """Copy what the line needs to the host, without waiting; then reset the counters."""
        if self.pending is not None:  # the last copy has not landed in log_every steps: wait for it
            self._write(self.pending, event.state)
        info, state, out = self.run.info, event.state, event.result.output
        elapsed, timed = state.elapsed(), state.timed_steps
        # The sums over all ranks (they skip the same steps and see as many labels): one tensor.
        sums = all_reduce_mean(torch.stack([self.loss_sum, self.correct.float()]), info)
        counts = torch.stack([self.good, self.skipped, self.longest_streak]).float()
        outputs = (out.representation_view1.detach().float(), out.projection_view1.detach().float())
        values: dict[str, Any] = {
            "epoch": state.epoch,
            "lr": event.lr,
            "tau": event.tau,
            # Over the steps the training clock counted: a sitting's first step (compilation) is not one.
            "images_per_sec": (timed - self.since[1]) * self.run.images_per_step / max(elapsed - self.since[0], 1e-9)
            if timed > self.since[1]
            else None,
            "elapsed": elapsed,
        }
        self.pending = _Pending(event.step, values, self.labelled, (torch.cat([sums, counts]), *outputs))
        for counter in (self.loss_sum, self.good, self.skipped, self.longest_streak, self.correct):
            counter.zero_()
        self.labelled, self.since = 0, (elapsed, timed)

    def _write(self, pending: _Pending, state: TrainState) -> None:
        self.pending = None
        (loss_sum, correct, good, skipped, streak), representation, projection = pending.host()
        step, values = pending.step, pending.values
        good, skipped, streak = int(good), int(skipped), int(streak)
        if skipped and streak > self.run.cfg.run.max_skipped_steps:
            last = ckpt_io.list_checkpoints(self.run.run_dir)
            where = f"; the last good checkpoint is {last[-1]}" if last else ""
            raise ByolError(
                f"the loss or the gradients were not finite for {streak} steps in a row (up to step {step}){where}; "
                f"resume with a lower learning rate: the same command with --lr {self.run.cfg.optim.base_lr / 2:g}"
            )
        mean_loss = loss_sum / good if good else None  # the mean loss of the steps that counted
        pstd = projection_std(projection)
        values = {
            "epoch": values["epoch"],
            "loss": mean_loss,
            **{k: values[k] for k in ("lr", "tau", "images_per_sec")},
            "projection_std": pstd,
            "projection_std_ratio": pstd * math.sqrt(projection.shape[1]),
            "effective_rank": effective_rank(representation),
            "projection_rank": effective_rank(projection),  # → 1 when the projections collapse
            "elapsed": values["elapsed"],
            "skipped_steps": skipped,
        }
        if pending.labelled:
            values["online_top1"] = correct / pending.labelled
        self.logger.log(step, values)
        if values["projection_std_ratio"] < COLLAPSE_RATIO and not self.collapse_warned:
            log.warning(
                "step %d: the representation looks collapsed (projection std × √d = %.3f, healthy ≈ 1)",
                step, values["projection_std_ratio"],
            )  # fmt: skip
            self.collapse_warned = True
        if mean_loss is not None:
            state.final_loss = mean_loss
        state.last_logs = values

    def close(self) -> None:
        self.pending = None  # a line not yet written when the loop broke off: it is not waited for
        self.logger.close()


class _Pending:
    """A metrics line on its way to the host: its tensors copied without waiting, an event to ask."""

    def __init__(self, step: int, values: dict[str, Any], labelled: int, tensors: tuple[torch.Tensor, ...]):
        self.step, self.values, self.labelled = step, values, labelled
        cuda = tensors[0].device.type == "cuda"
        self.tensors = [
            torch.empty(t.shape, dtype=t.dtype, pin_memory=True).copy_(t, non_blocking=True) if cuda else t
            for t in tensors
        ]  # fmt: skip
        self.event = torch.cuda.Event() if cuda else None
        if self.event is not None:
            self.event.record()

    def ready(self) -> bool:
        return self.event is None or self.event.query()

    def host(self) -> tuple[list[float], torch.Tensor, torch.Tensor]:
        if self.event is not None:
            self.event.synchronize()
        scalars, *outputs = self.tensors
        return scalars.tolist(), *outputs


class TimeBudget(Hook):
    """Lays the schedules over the steps a time budget allows, and ends the run on time.

    The budget counts training time (``TrainState.elapsed``: a sitting's first step, which compiles,
    is not in it). The first estimate comes after 20 timed steps (3 more steps of warm-up are not
    timed), then again at every epoch end, from the pace since the last one. Each estimate re-lays
    the rest of the schedule from the step it is made at (``Schedule.stretch``): the warm-up is fixed
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
        schedule = state.schedule
        if schedule.budget_seconds is None:
            return
        if self.mark is None and event.step >= self.first_step + self.WARMUP_STEPS:
            self.mark = (event.step, state.elapsed())
        elif self.mark is not None and (
            (not schedule.estimated and event.step >= self.mark[0] + self.TIMED_STEPS)
            or event.step % schedule.steps_per_epoch == 0
        ):
            self._estimate(state)
        check = not info.distributed or event.step % self.run.cfg.run.log_every == 0
        if check and from_rank0(int(state.elapsed() >= schedule.budget_seconds), info, self.run.device):
            schedule.total_steps = event.step
            state.stop = True

    def _estimate(self, state: TrainState) -> None:
        schedule, step, elapsed = state.schedule, state.step, state.elapsed()
        # The pace of the last stretch (an epoch: its kNN and checkpoint included), if long enough to time.
        since = self.last if self.last is not None and step - self.last[0] >= self.TIMED_STEPS else self.mark
        per_step = (elapsed - since[1]) / max(step - since[0], 1)
        self.last = (step, elapsed)
        remaining = max(schedule.budget_seconds - elapsed, 0.0)
        total = from_rank0(max(step + 1, step + int(remaining / per_step)), self.run.info, self.run.device)
        first = not schedule.estimated
        warmup = warmup_steps(self.run.cfg, schedule.steps_per_epoch, total) if first else None
        schedule.stretch(step, total, warmup)
        schedule.estimated = True
        log.info(
            "time budget: %.3f s per step, %d steps in all (warm-up %d)", per_step, schedule.total_steps,
            schedule.warmup_steps,
        )  # fmt: skip


class LongRunWarning(Hook):
    """Says once, after the first timed steps, when a run of fixed length would take days here."""

    WARMUP_STEPS, TIMED_STEPS, DAY = 3, 5, 24 * 3600.0

    def __init__(self, run: Run, start_step: int):
        self.run, self.first_step, self.mark = run, start_step, None

    def after_step(self, event: StepEvent) -> None:
        state = event.state
        if state.schedule.budget_seconds is not None or self.mark == "done":
            return
        if self.mark is None and event.step >= self.first_step + self.WARMUP_STEPS:
            self.mark = (event.step, state.elapsed())
        elif self.mark is not None and event.step >= self.mark[0] + self.TIMED_STEPS:
            per_step = (state.elapsed() - self.mark[1]) / (event.step - self.mark[0])
            remaining = per_step * (state.schedule.total_steps - event.step)
            if remaining > self.DAY:
                hint = "; on a CPU, --preset cpu learns visibly in minutes" if self.run.device.type == "cpu" else ""
                log.warning(
                    "at %.1f s per step the %d steps left take about %.1f days on this machine%s",
                    per_step, state.schedule.total_steps - event.step, remaining / self.DAY, hint,
                )  # fmt: skip
            self.mark = "done"


class KnnMonitor(Hook):
    """Weighted kNN accuracy of a fixed held-out part of a labelled training set (rank 0 only).

    Queries: ``data.monitor_fraction`` of the images (at most 5,000); memory bank: up to
    ``run.knn_max_bank`` of the others. Both are seen as evaluation views (``data.eval_crop``).
    """

    def __init__(self, run: Run, logger: MetricsLogger):
        cfg, data = run.cfg, run.data
        self.run, self.logger = run, logger
        self.every = max(1, round(cfg.run.knn_every * run.steps_per_epoch))
        self.query_idx, self.bank_idx = monitor_split(
            data, cfg.run.seed, cfg.data.monitor_fraction, cfg.run.knn_max_bank
        )

    @staticmethod
    def wanted(run: Run) -> bool:
        labelled = run.data.labelled and run.data.random_access  # tar shards: no images by index
        return labelled and run.cfg.run.knn_every > 0 and run.info.is_main

    def after_step(self, event: StepEvent) -> None:
        if event.step % self.every == 0 or event.last:
            knn = self.evaluate(event.step)
            self.logger.log(event.step, {"epoch": event.state.epoch, **knn})
            log.info("step %d: kNN top-1 %.4f", event.step, knn["knn_top1"])
            event.state.knn = knn

    def evaluate(self, step: int = 0) -> dict[str, float]:
        run, data, cfg = self.run, self.run.data, self.run.cfg
        encoder, mean, std = run.method.online_encoder, cfg.augment.mean, cfg.augment.std
        # In the run's precision, features and the kNN on the device: no host sync but the result.
        extract = functools.partial(
            extract_features,
            encoder,
            device=run.device,
            mean=mean,
            std=std,
            autocast=run.autocast,
            out_device=run.device,
        )
        bank, bank_y = extract(data.eval_batches(self.bank_idx))
        faults.reached(f"knn:{step}")
        query, query_y = extract(data.eval_batches(self.query_idx))
        bank_y, query_y = bank_y.to(run.device), query_y.to(run.device)
        acc = knn_accuracy(bank, bank_y, query, query_y, cfg.run.knn_k, cfg.run.knn_temperature, data.num_classes)
        return {"knn_top1": acc["top1"], "knn_top5": acc["top5"]}


def monitor_split(data: TrainData, seed: int, fraction: float, max_bank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Sorted indices of the monitor's queries and memory bank, fixed by ``seed``."""
    perm = torch.randperm(len(data.labels), generator=seeded_generator(seed, 91))
    n_query = min(max(1, int(len(perm) * fraction)), 5000)
    return perm[:n_query].sort().values, perm[n_query : n_query + max_bank].sort().values


class Checkpointer(Hook):
    """An atomic checkpoint at each epoch end, every ``checkpoint_every_minutes``, and at the last step.

    Rank 0 writes; the newest ``keep_checkpoints`` are kept. Non-finite weights are never written
    over good checkpoints. On a GPU the file is written in a background thread
    (``checkpoint.CheckpointWriter``) while training goes on; ``close`` waits for it.
    """

    def __init__(self, run: Run, background: bool | None = None):
        self.run = run
        self.minutes = run.cfg.run.checkpoint_every_minutes
        self.last_time = time.perf_counter()
        background = run.device.type == "cuda" if background is None else background
        self.writer = ckpt_io.CheckpointWriter(run.run_dir, run.cfg.run.keep_checkpoints, background)

    def after_step(self, event: StepEvent) -> None:
        if not self.run.info.is_main:
            return
        timed = self.minutes > 0 and time.perf_counter() - self.last_time >= self.minutes * 60
        if event.step % self.run.steps_per_epoch == 0 or timed or event.last:
            self.save(event.state)

    def save(self, state: TrainState) -> None:
        ckpt = checkpoint_state(self.run, state)
        weights = [v for v in ckpt["model"].values() if v.is_floating_point()]
        if not bool(torch.stack([torch.isfinite(v).all() for v in weights]).all()):  # one host sync
            raise ByolError(
                f"weights became non-finite at step {state.step}; not overwriting good checkpoints. Lower --lr"
            )
        self.writer.write(ckpt, state.step)
        self.last_time = time.perf_counter()

    def close(self) -> None:
        self.writer.close()


class ProgressBar(Hook):
    """A tqdm bar with the last logged figures: over the steps of a run of fixed length, over the
    training seconds of a time budget (with the time left; its step count is an estimate)."""

    def __init__(self, state: TrainState):
        from tqdm import tqdm

        self.budget = state.schedule.budget_seconds
        options = dict(dynamic_ncols=True, mininterval=1 if sys.stderr.isatty() else 30)
        if self.budget is None:
            self.bar = tqdm(total=state.schedule.total_steps, initial=state.step, unit="step", **options)
        else:
            self.bar = tqdm(
                total=round(self.budget), initial=min(round(state.elapsed()), round(self.budget)), unit="s",
                bar_format="{desc}{percentage:3.0f}%|{bar}| {n:.0f}/{total_fmt} s of training{postfix}",
                desc="time budget ", **options,
            )  # fmt: skip
        self.shown_logs: dict[str, Any] | None = None
        self.figures: dict[str, str] = {}

    def after_step(self, event: StepEvent) -> None:
        state = event.state
        logs = state.last_logs
        if logs is not None and logs is not self.shown_logs:
            self.shown_logs = logs
            ips = logs["images_per_sec"]
            self.figures = dict(
                ep=f"{logs['epoch']:.2f}", loss="skipped" if logs["loss"] is None else f"{logs['loss']:.3f}",
                lr=f"{logs['lr']:.2e}", tau=f"{logs['tau']:.4f}", ips="-" if ips is None else f"{ips:.0f}",
            )  # fmt: skip
        if self.budget is None:
            if self.bar.total != state.schedule.total_steps:
                self.bar.total = state.schedule.total_steps
                self.bar.refresh()
            self.bar.set_postfix(refresh=False, **self.figures)
            self.bar.update(1)
            return
        elapsed = min(state.elapsed(), self.budget)
        left = max(self.budget - elapsed, 0.0)
        self.bar.set_postfix_str(
            f"{int(left // 60)}:{int(left % 60):02d} left, step {state.step}/~{state.schedule.total_steps}"
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


def default_hooks(
    run: Run, state: TrainState, progress: bool = True, on_step: Callable[[int], None] | None = None
) -> list[Hook]:
    """The hooks of ``byol pretrain``, in the order they run after each step."""
    logger = MetricsLogger(run.run_dir, enabled=run.info.is_main)
    # The time budget first: when it ends the run, the metrics of the last step are logged.
    hooks: list[Hook] = [TimeBudget(run, state.step), MetricsLog(run, logger, state.step)]
    if run.info.is_main:
        hooks.append(LongRunWarning(run, state.step))
    if KnnMonitor.wanted(run):
        hooks.append(KnnMonitor(run, logger))
    hooks.append(Checkpointer(run))
    if progress and run.info.is_main:
        hooks.append(ProgressBar(state))
    if on_step is not None:
        hooks.append(StepCallback(on_step))
    return hooks


__all__ = [
    "Checkpointer",
    "Hook",
    "KnnMonitor",
    "LongRunWarning",
    "MetricsLog",
    "ProgressBar",
    "StepCallback",
    "StepEvent",
    "TimeBudget",
    "default_hooks",
    "monitor_split",
]

"""Where a run stands: its step, its schedule and its clock; started fresh or resumed from a checkpoint.

A checkpoint holds the whole method module (online, target, predictor), the optimiser, the online
classifier, the step, the schedule, the time spent, the config and the RNG states. Everything else
of the run (the data order, every augmentation draw, lr and τ) is a function of the step.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from byol import schedules
from byol.config import Config
from byol.config_io import save_yaml
from byol.constants import VERSION
from byol.errors import ByolError
from byol.files import atomic_write
from byol.schedules import cosine, ramp, tau_at
from byol.train import checkpoint as ckpt_io
from byol.train.setup import CONFIG_FILE, Run, record_history

log = logging.getLogger(__name__)

PROVISIONAL_EPOCHS = 1000  # a time budget's length until its first estimate from measured speed


@dataclass
class Schedule:
    """Steps of the run; fixed for an epoch count, estimated from speed for a time budget.

    A time budget's estimates re-lay the schedule at a step (``stretch``): the lr and τ go on from
    the values they had there (the ``*_from`` progresses at ``anchor_step``) over the new length,
    so an estimate bends the rest of each curve and never makes it jump. The warm-up is fixed in
    steps at the first estimate; later ones only stretch or shrink the cosine tail.
    """

    total_steps: int
    warmup_steps: int
    steps_per_epoch: int
    estimated: bool = False  # a time budget's estimate has been made
    budget_seconds: float | None = None
    anchor_step: int = 0  # where the schedule was last re-laid (0: as laid at the start)
    warmup_from: float = 0.0  # lr / peak at anchor_step, when it falls in the warm-up
    decay_from: float = 0.0  # progress of the lr's cosine at anchor_step, when it falls after the warm-up
    tau_from: float = 0.0  # progress of τ's cosine at anchor_step
    tau_to: float | None = None  # an extension's re-warm: τ's progress at warmup_steps (then up to 1)

    @classmethod
    def for_config(cls, cfg: Config, steps_per_epoch: int) -> Schedule:
        if cfg.run.time_budget is not None:
            total = steps_per_epoch * PROVISIONAL_EPOCHS
            return cls(
                total, warmup_steps(cfg, steps_per_epoch, total), steps_per_epoch, False, cfg.run.time_budget * 60
            )
        total = max(1, round(cfg.run.epochs * steps_per_epoch))
        return cls(total, warmup_steps(cfg, steps_per_epoch, total), steps_per_epoch)

    def _warmup_progress(self, step: int) -> float:
        start, value = (self.anchor_step, self.warmup_from) if self.anchor_step < self.warmup_steps else (0, 0.0)
        return ramp(step, start, self.warmup_steps, value)

    def _decay_progress(self, step: int) -> float:
        if self.anchor_step >= self.warmup_steps:
            return ramp(step, self.anchor_step, max(self.total_steps, self.anchor_step + 1), self.decay_from)
        # From the warm-up's end; an extension's re-warm ends part-way down the cosine (decay_from).
        return ramp(step, self.warmup_steps, max(self.total_steps, self.warmup_steps + 1), self.decay_from)

    def _tau_progress(self, step: int) -> float:
        if self.tau_to is None:
            return ramp(step, self.anchor_step, self.total_steps, self.tau_from)
        if step < self.warmup_steps:  # an extension's re-warm: τ's progress moves linearly to tau_to
            share = (step - self.anchor_step) / max(self.warmup_steps - self.anchor_step, 1)
            return self.tau_from + (self.tau_to - self.tau_from) * min(max(share, 0.0), 1.0)
        return ramp(step, self.warmup_steps, self.total_steps, self.tau_to)

    def lr(self, step: int, peak: float) -> float:
        """Linear warm-up to ``peak``, then a cosine down to 0 at ``total_steps``."""
        if step < self.warmup_steps:  # to the lr the cosine starts from: the peak, but after an extension
            return peak * cosine(self.decay_from) * self._warmup_progress(step)
        return peak * cosine(self._decay_progress(step))

    def tau(self, step: int, tau_base: float) -> float:
        if self.total_steps <= 0:
            return 1.0 if tau_base != 0.0 else 0.0
        return tau_at(self._tau_progress(step), tau_base)

    def stretch(self, step: int, total_steps: int, warmup_steps: int | None = None) -> None:
        """Lay the rest of the run, from ``step`` on, over ``total_steps`` (and ``warmup_steps``, which
        may only be given while ``step`` is still in the warm-up): lr and τ continue from their values
        at ``step``, so nothing jumps."""
        warming = step < self.warmup_steps
        progress = self._warmup_progress(step) if warming else self._decay_progress(step)
        tau_progress = self._tau_progress(step)
        if warmup_steps is not None and warming:
            self.warmup_steps = max(warmup_steps, step)
            if step == self.warmup_steps:  # a budget too short for its warm-up: decay from the lr reached
                warming, progress = False, math.acos(2.0 * progress - 1.0) / math.pi
        self.anchor_step, self.total_steps = step, max(total_steps, step + 1)
        # While warming, the warm-up keeps its target (the peak; an extension's re-warm: part-way down).
        self.warmup_from, self.decay_from = (progress, self.decay_from) if warming else (1.0, progress)
        self.tau_from, self.tau_to = tau_progress, None

    def extend(self, step: int, total_steps: int, warmup_steps: int) -> None:
        """Lay a run that has trained ``step`` steps over a longer ``total_steps`` (its warm-up, planned
        at the new length: ``warmup_steps``), with no jump in lr or τ.

        Where the new length's lr at ``step`` is above the present one (always, for a run that had
        finished: its lr had decayed to 0 and τ risen to 1), both are re-warmed: over the warm-up's
        length (at most half the steps left) lr and τ's progress go linearly from their values at
        ``step`` to the new length's schedule, which they follow from there to the end (lr 0, τ 1).
        Otherwise the rest of the run is re-laid from ``step`` as a time budget's estimate is.
        """
        if step < self.warmup_steps or step < warmup_steps:  # still warming up: the warm-up goes on
            self.stretch(step, total_steps, max(warmup_steps, step) if step < self.warmup_steps else None)
            return
        end = step + max(1, min(warmup_steps, (total_steps - step) // 2))
        planned = (end - warmup_steps) / max(total_steps - warmup_steps, 1)  # the new length's cosine progress
        now_lr, now_tau = self.lr(step, 1.0), self._tau_progress(step)
        if now_lr >= cosine(planned):
            self.stretch(step, total_steps)
            return
        self.anchor_step, self.warmup_steps, self.total_steps = step, end, total_steps
        self.warmup_from, self.decay_from = now_lr / cosine(planned), planned
        self.tau_from, self.tau_to = now_tau, end / total_steps


def warmup_steps(cfg: Config, steps_per_epoch: int, total_steps: int) -> int:
    """``optim.warmup_epochs`` in steps, at most half of the run (``byol.schedules.warmup_steps``)."""
    return schedules.warmup_steps(cfg.optim.warmup_epochs, steps_per_epoch, total_steps)


@dataclass
class TrainState:
    """The loop's record: the step, the schedule, the clock, and what the monitors last measured.

    The clock counts training: each sitting's first step, which holds compilation and warm-up,
    is timed apart (``compile_seconds``) and left out of ``elapsed()``, of the time budget and of
    the images per second.
    """

    step: int
    schedule: Schedule
    elapsed_before: float = 0.0  # seconds of training in earlier sittings of a resumed run
    compile_before: float = 0.0  # seconds to the first step in earlier sittings
    timed_steps_before: int = 0  # steps counted by the clock in earlier sittings
    stop: bool = False  # set when the time budget runs out, or a signal stops the run
    preempted: str | None = None  # the signal that stopped the run (byol.train.preempt)
    final_loss: float = math.nan  # the last logged mean loss
    knn: dict[str, float] = field(default_factory=dict)  # the last kNN monitor figures
    last_logs: dict[str, Any] | None = None  # the last metrics line
    sitting_started: float = field(default_factory=time.perf_counter)
    sitting_step: int = 0  # the step this sitting began at
    started: float | None = None  # when the clock started: after the sitting's first step
    first_step_seconds: float = 0.0  # this sitting's time to its first step
    extensions: list[dict[str, Any]] = field(default_factory=list)  # each change of the run's length

    def start_sitting(self) -> None:
        """The loop begins: the clock waits for the first step."""
        self.sitting_started, self.sitting_step, self.started = time.perf_counter(), self.step, None

    def first_step_done(self, device: torch.device) -> None:
        """Start the clock after the sitting's first step, once its queued work has run."""
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        self.started = time.perf_counter()
        self.first_step_seconds = self.started - self.sitting_started
        log.info(
            "first step after %.1f s (compilation and warm-up; not counted as training time)", self.first_step_seconds
        )

    def elapsed(self) -> float:
        """Seconds of training in all sittings so far (each sitting's first step left out)."""
        return self.elapsed_before + (time.perf_counter() - self.started if self.started is not None else 0.0)

    @property
    def compile_seconds(self) -> float:
        """Seconds to the first step, all sittings together."""
        return self.compile_before + self.first_step_seconds

    @property
    def timed_steps(self) -> int:
        """Steps the clock has counted, all sittings together."""
        return self.timed_steps_before + (max(self.step - self.sitting_step - 1, 0) if self.started is not None else 0)

    @property
    def epoch(self) -> float:
        return self.step / self.schedule.steps_per_epoch

    @property
    def finished(self) -> bool:
        return self.stop or self.step >= self.schedule.total_steps


def start_state(run: Run, resume: bool) -> TrainState:
    """A fresh state, or the state of the newest checkpoint that fits the model, weights restored.

    A checkpoint of other data (another fingerprint of the image list) is refused unless
    ``data.allow_changed`` is set.
    """
    found = ckpt_io.latest_checkpoint(run.run_dir, run.device, lambda p, c: _restore(run, p, c)) if resume else None
    if found is None:
        truncate_metrics(run, -1)  # a run killed before its first checkpoint starts over: no line kept
        return TrainState(0, Schedule.for_config(run.cfg, run.steps_per_epoch))
    path, ckpt = found
    _check_same_data(run, path, ckpt.get("data"))
    ckpt_io.set_rng_state(ckpt["rng"])
    step = int(ckpt["step"])
    truncate_metrics(run, step)
    log.info("resumed from %s at step %d", path, step)
    state = TrainState(
        step,
        Schedule(**ckpt["schedule"]),
        elapsed_before=float(ckpt.get("elapsed", 0.0)),
        compile_before=float(ckpt.get("compile_seconds", 0.0)),
        timed_steps_before=int(ckpt.get("timed_steps", 0)),
        extensions=list(ckpt.get("extensions", [])),
    )
    fit_length(run, state)
    return state


def fit_length(run: Run, state: TrainState) -> None:
    """A resumed run given another ``--epochs`` (or ``--time-budget``) than its schedule was laid for
    goes on over the new length from its step (``Schedule.extend``; a shorter one that has not been
    reached shrinks the tail); one that has trained past it, or another kind of length, is refused."""
    cfg, schedule, step = run.cfg, state.schedule, state.step
    budget = None if cfg.run.time_budget is None else cfg.run.time_budget * 60
    if (budget is None) != (schedule.budget_seconds is None):
        was = "--time-budget" if schedule.budget_seconds is not None else "--epochs"
        raise ByolError(f"this run was laid out by {was}: give {was} to resume or extend it")
    if budget is None:
        total, before = max(1, round(cfg.run.epochs * schedule.steps_per_epoch)), schedule.total_steps
        if total == before:
            return
        if total <= step:
            raise ByolError(
                f"--epochs {cfg.run.epochs:g} is {total} steps; this run has trained {step} "
                f"({step / schedule.steps_per_epoch:g} epochs): give more epochs, or another --out"
            )
        spe = schedule.steps_per_epoch
        what = {"from_epochs": round(before / spe, 6), "to_epochs": round(total / spe, 6)}
    else:
        before, spent = schedule.budget_seconds, state.elapsed_before
        if budget == before:
            return
        if budget <= spent:
            raise ByolError(
                f"--time-budget {cfg.run.time_budget:g} minutes: this run has trained {spent / 60:.2f}; give more"
            )
        per_step = spent / max(state.timed_steps_before, 1)
        total = max(step + 1, step + int((budget - spent) / max(per_step, 1e-9)))
        schedule.budget_seconds = budget
        what = {"from_minutes": round(before / 60, 6), "to_minutes": round(budget / 60, 6)}
    warmup = warmup_steps(cfg, schedule.steps_per_epoch, total)
    if total > schedule.total_steps or budget is not None:
        schedule.extend(step, total, warmup)
    else:
        schedule.stretch(step, total)
    state.extensions.append({"at_step": step, **what})
    if run.info.is_main:  # accepted: now config.yaml and the history say it
        save_yaml(cfg, run.run_dir / CONFIG_FILE)
        key = "run.epochs" if budget is None else "run.time_budget"
        record_history(run.run_dir, {key: list(what.values())})
    log.info(
        "extended the run at step %d: %s (lr and τ go on from their values there)",
        step, ", ".join(f"{k} {v:g}" for k, v in what.items()),
    )  # fmt: skip


def _restore(run: Run, path, ckpt: dict[str, Any]) -> None:
    ckpt_io.load_state_strict(run.method, ckpt["model"], f"checkpoint {path}")
    ckpt_io.load_state_strict(run.optimizer, ckpt["optimizer"], f"the optimiser state of checkpoint {path}")
    if run.classifier is not None and "classifier" in ckpt:
        run.classifier.load(ckpt["classifier"])


def _check_same_data(run: Run, path, saved: dict[str, Any] | None) -> None:
    now = run.data.fingerprint()
    if saved is None or saved == now or run.cfg.data.allow_changed:
        if saved is not None and saved != now:
            log.warning("resuming on other data than %s was trained on (data.allow_changed)", path)
        return
    raise ByolError(
        f"{path} was trained on other data ({saved['count']} images, fingerprint {saved['sha256'][:12]}) than "
        f"{run.cfg.data.path} holds now ({now['count']} images, {now['sha256'][:12]}); resume on the same images, "
        "or --set data.allow_changed=true to go on with these"
    )


def checkpoint_state(run: Run, state: TrainState) -> dict[str, Any]:
    ckpt = {
        "model": run.method.state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "step": state.step,
        "schedule": dataclasses.asdict(state.schedule),
        "config": run.cfg.to_dict(),
        "data": run.data.fingerprint(),
        "rng": ckpt_io.rng_state(),
        "elapsed": state.elapsed(),
        "compile_seconds": state.compile_seconds,
        "timed_steps": state.timed_steps,
        "extensions": state.extensions,
        "byol_version": VERSION,
    }
    if run.classifier is not None:
        ckpt["classifier"] = run.classifier.state()
    return ckpt


def truncate_metrics(run: Run, step: int) -> None:
    """Drop metric lines written after the checkpoint we resume from (they will be written again)."""
    path = run.run_dir / "metrics.jsonl"
    if not path.exists() or not run.info.is_main:
        return
    keep = [line for line in path.read_text().splitlines() if line.strip() and json.loads(line)["step"] <= step]
    with atomic_write(path, "w") as f:
        f.writelines(line + "\n" for line in keep)

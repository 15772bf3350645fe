"""Where a run stands: its step, its plan (lr and τ), its clock and why it stopped; started fresh or
resumed from a checkpoint.

A checkpoint (``byol.train.checkpoint.Checkpoint``) holds the whole method module (online, target,
predictor), the optimiser, the online classifier, the step, the plan, the time spent, the config and
the RNG states: ``checkpoint_state`` fills one, ``start_state`` reads one back. Everything else of the
run (the data order, every augmentation draw, lr and τ) is a function of the step.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from byol.schedules import Plan
from byol.train import checkpoint as ckpt_io
from byol.train.checkpoint import Checkpoint
from byol.train.run_folder import check_same_data, fit_length, record_length, truncate_metrics
from byol.train.setup import Run

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stop:
    """Why a run stops before its plan's end, as a hook reports it (``Hook.after_step`` returns one):
    ``reason`` in words; ``signal``, the signal that asked for it (preemption: the run is checkpointed
    and ``pretrain`` raises ``Preempted``), None for a stop that ends the run (the time budget)."""

    reason: str
    signal: str | None = None


@dataclass
class TrainState:
    """The loop's record: the step, the plan (lr and τ), the clock, and why the run stopped.

    The clock counts training: each sitting's first step, which holds compilation and warm-up,
    is timed apart (``compile_seconds``) and left out of ``elapsed()``, of the time budget and of
    the images per second.
    """

    step: int
    plan: Plan
    elapsed_before: float = 0.0  # seconds of training in earlier sittings of a resumed run
    compile_before: float = 0.0  # seconds to the first step in earlier sittings
    timed_steps_before: int = 0  # steps counted by the clock in earlier sittings
    stop: Stop | None = None  # what a hook reported: the time budget ran out, a signal came
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
        return self.step / self.plan.steps_per_epoch

    @property
    def preempted(self) -> str | None:
        """The signal that stopped the run (``byol.train.signals``), if one did."""
        return self.stop.signal if self.stop is not None else None

    @property
    def finished(self) -> bool:
        return self.stop is not None or self.step >= self.plan.total_steps


def start_state(run: Run, resume: bool) -> TrainState:
    """A fresh state, or the state of the newest checkpoint that fits the model, weights restored.

    A checkpoint of other data (another fingerprint of the image list) is refused unless
    ``data.allow_changed`` is set.
    """
    found = ckpt_io.latest_checkpoint(run.run_dir, run.device, lambda p, c: _restore(run, p, c)) if resume else None
    if found is not None:
        return _resumed(run, *found)
    truncate_metrics(run.run_dir, -1, run.info.is_main)  # killed before its first checkpoint: start over
    r = run.cfg.run  # the plan: run.epochs long, or laid by run.time_budget's estimates
    budget = None if r.time_budget is None else r.time_budget * 60
    return TrainState(0, Plan.for_run(run.steps_per_epoch, run.cfg.optim.warmup_epochs, r.epochs, budget))


def _resumed(run: Run, path, ckpt: Checkpoint) -> TrainState:
    """The state of checkpoint ``ckpt`` (read from ``path``; its weights already restored), its
    length fitted to the one the config asks for now."""
    check_same_data(run.cfg, path, ckpt.data, run.data.fingerprint())
    ckpt_io.set_rng_state(ckpt.rng)
    step = int(ckpt.step)
    truncate_metrics(run.run_dir, step, run.info.is_main)
    log.info("resumed from %s at step %d", path, step)
    state = TrainState(
        step,
        Plan.from_dict(ckpt.schedule),
        elapsed_before=float(ckpt.elapsed),
        compile_before=float(ckpt.compile_seconds),
        timed_steps_before=int(ckpt.timed_steps),
        extensions=list(ckpt.extensions),
    )
    state.plan, what = fit_length(run.cfg, state.plan, step, state.elapsed_before, state.timed_steps_before)
    if what:
        state.extensions.append({"at_step": step, **what})
        record_length(run.run_dir, run.cfg, step, what, run.info)
    return state


def _restore(run: Run, path, ckpt: Checkpoint) -> None:
    ckpt_io.load_state_strict(run.method, ckpt.model, f"checkpoint {path}")
    ckpt_io.load_state_strict(run.optimizer, ckpt.optimizer, f"the optimiser state of checkpoint {path}")
    if run.classifier is not None and ckpt.classifier is not None:
        saved = ckpt.classes  # the classes its rows stand for (checkpoints before 2026-12-06: unsaid)
        if saved is not None and list(saved) != _classes(run):
            log.warning("online classifier: started afresh, the training folder's classes changed since %s "
                        "(%d then, %d now): its rows stood for the old ones", path, len(saved),
                        len(_classes(run)))  # fmt: skip
        else:
            run.classifier.load(ckpt.classifier)


def checkpoint_state(run: Run, state: TrainState) -> Checkpoint:
    """The checkpoint of ``run`` at ``state``."""
    classifier = run.classifier
    return Checkpoint(
        model=run.method.state_dict(),
        optimizer=run.optimizer.state_dict(),
        step=state.step,
        schedule=state.plan.as_dict(),
        config=run.cfg.to_dict(),
        rng=ckpt_io.rng_state(),
        data=run.data.fingerprint(),
        elapsed=state.elapsed(),
        compile_seconds=state.compile_seconds,
        timed_steps=state.timed_steps,
        extensions=state.extensions,
        precision=run.precision,  # what a resume trains in (auto measured it once: it must not flip)
        classifier=classifier.state() if classifier is not None else None,
        classes=_classes(run) if classifier is not None else None,  # a resume on other classes restarts it
    )


def _classes(run: Run) -> list[str]:
    """The names of the online classifier's rows: a folder's classes; tar shards' ``cls`` numbers."""
    names = getattr(run.data, "classes", None)
    return list(names) if names is not None else [str(c) for c in range(run.data.num_classes)]

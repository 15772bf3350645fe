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

from byol.config import Config
from byol.errors import ByolError
from byol.files import atomic_write
from byol.schedules import lr_schedule, tau_schedule
from byol.train import checkpoint as ckpt_io
from byol.train.setup import Run

log = logging.getLogger(__name__)

PROVISIONAL_EPOCHS = 1000  # a time budget's length until its first estimate from measured speed


@dataclass
class Schedule:
    """Steps of the run; fixed for an epoch count, estimated from speed for a time budget."""

    total_steps: int
    warmup_steps: int
    steps_per_epoch: int
    estimated: bool = False  # a time budget's estimate has been made
    budget_seconds: float | None = None

    @classmethod
    def for_config(cls, cfg: Config, steps_per_epoch: int) -> Schedule:
        if cfg.run.time_budget is not None:
            total = steps_per_epoch * PROVISIONAL_EPOCHS
            return cls(
                total, warmup_steps(cfg, steps_per_epoch, total), steps_per_epoch, False, cfg.run.time_budget * 60
            )
        total = max(1, round(cfg.run.epochs * steps_per_epoch))
        return cls(total, warmup_steps(cfg, steps_per_epoch, total), steps_per_epoch)

    def lr(self, step: int, peak: float) -> float:
        return lr_schedule(step, self.total_steps, peak, self.warmup_steps)

    def tau(self, step: int, tau_base: float) -> float:
        return tau_schedule(step, self.total_steps, tau_base)


def warmup_steps(cfg: Config, steps_per_epoch: int, total_steps: int) -> int:
    """``optim.warmup_epochs`` in steps, at most half of the run."""
    return min(round(cfg.optim.warmup_epochs * steps_per_epoch), total_steps // 2)


@dataclass
class TrainState:
    """The loop's record: the step, the schedule, the clock, and what the monitors last measured."""

    step: int
    schedule: Schedule
    elapsed_before: float = 0.0  # seconds spent in earlier sittings of a resumed run
    stop: bool = False  # set when the time budget runs out
    final_loss: float = math.nan  # the last logged mean loss
    knn: dict[str, float] = field(default_factory=dict)  # the last kNN monitor figures
    last_logs: dict[str, Any] | None = None  # the last metrics line
    started: float = field(default_factory=time.perf_counter)

    def start_clock(self) -> None:
        self.started = time.perf_counter()

    def elapsed(self) -> float:
        """Seconds of training in all sittings so far."""
        return self.elapsed_before + time.perf_counter() - self.started

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
        truncate_metrics(run, 0)  # a run killed before its first checkpoint starts over
        return TrainState(0, Schedule.for_config(run.cfg, run.steps_per_epoch))
    path, ckpt = found
    _check_same_data(run, path, ckpt.get("data"))
    ckpt_io.set_rng_state(ckpt["rng"])
    step = int(ckpt["step"])
    truncate_metrics(run, step)
    log.info("resumed from %s at step %d", path, step)
    return TrainState(step, Schedule(**ckpt["schedule"]), elapsed_before=float(ckpt.get("elapsed", 0.0)))


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
    from byol import __version__

    ckpt = {
        "model": run.method.state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "step": state.step,
        "schedule": dataclasses.asdict(state.schedule),
        "config": run.cfg.to_dict(),
        "data": run.data.fingerprint(),
        "rng": ckpt_io.rng_state(),
        "elapsed": state.elapsed(),
        "byol_version": __version__,
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

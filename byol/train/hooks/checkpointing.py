"""The hook that writes checkpoints during training."""

from __future__ import annotations

import time

import torch

from byol.errors import ByolError
from byol.train import checkpoint as ckpt_io
from byol.train.hooks.base import Hook, StepEvent
from byol.train.setup import Run
from byol.train.state import TrainState, checkpoint_state


class CheckpointCadence(Hook):
    """An atomic checkpoint at each epoch end, every ``checkpoint_every_minutes``, and at the last step.

    Rank 0 writes; the newest ``keep_checkpoints`` are kept. Non-finite weights are never written
    over good checkpoints. On a GPU the file is written in a background thread
    (``checkpoint.CheckpointWriter``) while training goes on; ``close`` waits for it.
    """

    runs_after = ("Preemption", "TimeBudget")  # a stop makes this step the last: checkpointed

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
        weights = [v for v in ckpt.model.values() if v.is_floating_point()]
        if not bool(torch.stack([torch.isfinite(v).all() for v in weights]).all()):  # one host sync
            raise ByolError(
                f"weights became non-finite at step {state.step}; not overwriting good checkpoints. Lower --lr"
            )
        self.writer.write(ckpt, state.step)
        self.last_time = time.perf_counter()

    def close(self) -> None:
        self.writer.close()

"""The non-finite guard: a run whose loss or gradients stay non-finite stops, naming its last good checkpoint."""

from __future__ import annotations

import torch

from byol.errors import ByolError
from byol.train import checkpoint as ckpt_io
from byol.train.hooks.base import Hook, StepEvent
from byol.train.setup import Run


class NonFiniteGuard(Hook):
    """Stops the run with a one-line error when more than ``run.max_skipped_steps`` steps in a row
    were skipped for a non-finite loss or gradient (``StepResult.skipped``: the optimiser did not step).

    The streak is counted on the device. The guard reads it every ``every`` steps and at the last:
    every step on a CPU, where reading a device value costs nothing, and every
    ``max(1, run.max_skipped_steps)`` steps on a GPU, so that the host waits for the device that
    rarely: a streak past the limit stops the run at most that many steps after it began to exceed it.
    """

    def __init__(self, run: Run):
        self.run, self.limit = run, run.cfg.run.max_skipped_steps
        self.every = max(1, self.limit) if run.device.type == "cuda" else 1
        self.streak = torch.zeros((), device=run.device, dtype=torch.long)
        self.longest = torch.zeros((), device=run.device, dtype=torch.long)  # since the last look

    def after_step(self, event: StepEvent) -> None:
        skipped = event.result.skipped
        if skipped is None:
            return
        self.streak = (self.streak + 1) * skipped
        self.longest = torch.maximum(self.longest, self.streak)
        if event.step % self.every and not event.last:
            return
        longest = int(self.longest)
        self.longest.zero_()
        if longest > self.limit:
            last = ckpt_io.list_checkpoints(self.run.run_dir)
            where = f"; the last good checkpoint is {last[-1]}" if last else ""
            raise ByolError(
                f"the loss or the gradients were not finite for {longest} steps in a row (up to step {event.step})"
                f"{where}; resume with a lower learning rate: the same command with --lr "
                f"{self.run.cfg.optim.base_lr / 2:g}"
            )

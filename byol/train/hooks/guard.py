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

    The streak is counted on the device. The guard looks at its longest stretch every ``every`` steps
    and at the last: every step on a CPU, where reading a device value costs nothing; on a GPU every
    ``max(1, run.max_skipped_steps)`` steps, reading the copy it started at the look before (landed by
    then), so that the host never waits for the device here. A streak past the limit stops a GPU run at
    most twice that many steps after it began to exceed it.
    """

    runs_after = ("Preemption", "TimeBudget")  # a stop makes this step the last: looked at

    def __init__(self, run: Run):
        self.run, self.limit = run, run.cfg.run.max_skipped_steps
        self.every = max(1, self.limit) if run.device.type == "cuda" else 1
        self.streak = torch.zeros((), device=run.device, dtype=torch.long)
        self.longest = torch.zeros((), device=run.device, dtype=torch.long)  # since the last look
        self.defer = run.device.type == "cuda"  # read the last look's copy instead of waiting for the device
        self.pending: tuple[torch.Tensor, torch.cuda.Event] | None = None  # that copy, on its way

    def after_step(self, event: StepEvent) -> None:
        skipped = event.result.skipped
        if skipped is None:
            return
        self.streak = (self.streak + 1) * skipped
        self.longest = torch.maximum(self.longest, self.streak)
        if event.step % self.every and not event.last:
            return
        longest = self._longest_since_last_look(wait=event.last or not self.defer)
        if longest > self.limit:
            last = ckpt_io.list_checkpoints(self.run.run_dir)
            where = f"; the last good checkpoint is {last[-1]}" if last else ""
            raise ByolError(
                f"the loss or the gradients were not finite for {longest} steps in a row (up to step {event.step})"
                f"{where}; resume with a lower learning rate: the same command with --lr "
                f"{self.run.cfg.optim.base_lr / 2:g}"
            )

    def _longest_since_last_look(self, wait: bool) -> int:
        """The longest streak the device counted: read now (``wait``), or, on a GPU, the copy the last
        look started, while this look's is started for the next one."""
        landed = 0
        if self.pending is not None:
            host, done = self.pending
            done.synchronize()  # recorded a look ago: long done
            landed, self.pending = int(host), None
        if wait:
            landed = max(landed, int(self.longest))
        else:
            self.pending = self._start_copy()
        self.longest.zero_()  # after the copy, in the device's order
        return landed

    def _start_copy(self) -> tuple[torch.Tensor, torch.cuda.Event]:
        """The longest streak copied to pinned host memory without waiting, and the event that says it landed."""
        host = torch.empty((), dtype=torch.long, pin_memory=True)
        host.copy_(self.longest, non_blocking=True)
        done = torch.cuda.Event()
        done.record()
        return host, done

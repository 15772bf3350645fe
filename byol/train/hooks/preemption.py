"""The hook that stops a run told to stop (``byol.train.signals``), so that its step is checkpointed."""

from __future__ import annotations

import torch

from byol.dist import all_reduce_mean
from byol.train.hooks.base import Hook, StepEvent
from byol.train.setup import Run
from byol.train.signals import SignalCatcher
from byol.train.state import Stop


class Preemption(Hook):
    """Ends the loop after the step in flight when a signal has come (its ``Stop`` names it).

    The schedule is left as it was laid (a resumed run goes on with it). Alone, it looks at every
    step (a Python flag, no sync); under torchrun the ranks agree at log steps (one all-reduce each),
    so that every rank stops at the same step when any of them was signalled.
    """

    def __init__(self, run: Run, signals: SignalCatcher):
        self.run, self.signals = run, signals

    def after_step(self, event: StepEvent) -> Stop | None:
        info, received = self.run.info, self.signals.received
        if info.distributed:
            if event.step % self.run.cfg.run.log_every:
                return None
            flag = torch.tensor([float(received is not None)], device=self.run.device)
            if float(all_reduce_mean(flag, info)) == 0:
                return None
        elif received is None:
            return None
        signal = received or "SIGTERM"  # a rank that was not signalled itself
        return Stop(f"{signal} received", signal=signal)

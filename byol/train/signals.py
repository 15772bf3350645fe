"""Preemption: a run told to stop ends at the step it is at, with a checkpoint of that step.

SIGTERM is what SLURM, Kubernetes and spot instances send before they kill; SIGUSR1 what
``sbatch --signal=USR1@120`` sends ahead of a time limit; SIGINT is Ctrl-C. While a run trains, each
is recorded instead of ending the process (``SignalCatcher``); the ``Preemption`` hook then stops
the loop after the step in flight, the checkpointer writes that step, and ``pretrain`` raises
``Preempted``: one line naming the checkpoint, exit status 128 + the signal's number, as a process
the signal had ended. The same command resumes the run, bit for bit. A second signal of the same
kind ends the process at once, as it would have without byol.
"""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path

from byol.errors import ByolError

log = logging.getLogger(__name__)

SIGNALS = ("SIGTERM", "SIGINT", "SIGUSR1")


class Preempted(ByolError):
    """The run was stopped by a signal after writing a checkpoint of its current step."""

    def __init__(self, signal_name: str, step: int, checkpoint: Path | None):
        self.exit_code = 128 + int(signal.Signals[signal_name])
        where = f"checkpoint {checkpoint}" if checkpoint is not None else "no checkpoint written"
        super().__init__(f"stopped by {signal_name} at step {step}; {where}; the same command resumes the run")


class SignalCatcher:
    """While entered (in the main thread), the ``SIGNALS`` are recorded in ``received`` instead of acting."""

    def __init__(self) -> None:
        self.received: str | None = None
        self.previous: dict[int, object] = {}

    def __enter__(self) -> SignalCatcher:
        if threading.current_thread() is threading.main_thread():  # signal handlers live there only
            for name in SIGNALS:
                number = getattr(signal, name, None)
                if number is not None:
                    self.previous[number] = signal.signal(number, self._handle)
        return self

    def _handle(self, number: int, frame) -> None:
        if self.received is not None:  # a second signal: what it would have done without us
            signal.signal(number, self.previous.get(number, signal.SIG_DFL))
            signal.raise_signal(number)
            return
        self.received = signal.Signals(number).name
        log.warning("%s: checkpointing the current step, then stopping (send it again to stop at once)", self.received)

    def __exit__(self, *exc) -> None:
        for number, handler in self.previous.items():
            signal.signal(number, handler)
        self.previous = {}

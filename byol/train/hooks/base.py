"""What the loop hands its hooks after each step, and what a hook is."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from byol.train.engine import StepResult
from byol.train.state import TrainState


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

"""What the loop hands its hooks after each step, and what a hook is."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch

from byol.train.engine import StepResult
from byol.train.state import Stop, TrainState


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
    """A periodic concern: ``after_step`` is called after every step, ``close`` once at the end.

    ``after_step`` returns a ``Stop`` to end the run after this step (the hooks after it see
    ``event.last``), None otherwise. A hook that reads what another hook does in the same step (its
    line, its stop) names that hook's class in ``runs_after``: ``check_order`` refuses a list that
    puts it first.
    """

    runs_after: ClassVar[tuple[str, ...]] = ()

    def after_step(self, event: StepEvent) -> Stop | None:
        raise NotImplementedError

    def close(self) -> None:
        pass


def _hook_classes_of(cls: type) -> list[type]:
    """Every subclass of ``cls``, at any depth."""
    return [c for sub in cls.__subclasses__() for c in (sub, *_hook_classes_of(sub))]


def check_order(hooks: Sequence[Hook]) -> None:
    """A ``ValueError`` naming both when a hook comes before one it reads (``Hook.runs_after``), or when
    ``runs_after`` names no hook class (a typo, a renamed class). A hook is known by its class's name, or
    by its ``name`` (a wrapper's: the hook it wraps); one not in the list is not waited for."""
    names = [getattr(h, "name", type(h).__name__) for h in hooks]
    position, known = {name: i for i, name in enumerate(names)}, {c.__name__ for c in _hook_classes_of(Hook)}
    for i, hook in enumerate(hooks):
        unknown = [name for name in getattr(hook, "runs_after", ()) if name not in known]
        if unknown:
            raise ValueError(f"hook {names[i]}: runs_after names {unknown[0]}, which is no hook class")
        late = [name for name in getattr(hook, "runs_after", ()) if position.get(name, -1) > i]
        if late:
            raise ValueError(f"hook {names[i]} reads what {late[0]} does in a step: it must run after it")

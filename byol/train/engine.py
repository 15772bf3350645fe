"""One BYOL optimisation step, as a function of state and batch that returns what to log."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import nn

from byol.method import BYOL, BYOLOutput


@dataclass
class StepResult:
    loss: torch.Tensor  # detached scalar on the device: no host sync here
    output: BYOLOutput  # of the last micro-batch, for the monitors


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def train_step(
    model: nn.Module,
    byol: BYOL,
    optimizer: torch.optim.Optimizer,
    micro_batches: list[tuple[torch.Tensor, torch.Tensor]],
    lr: float,
    tau: float,
    autocast: contextlib.AbstractContextManager | None = None,
) -> StepResult:
    """Gradient step over ``micro_batches`` (accumulated), then the target update with ``tau``.

    ``model`` is what runs forward (``byol`` itself, or its DDP / compiled wrapper); the target is
    updated once per step, however many micro-batches, as the paper emulated large batches.
    """
    set_lr(optimizer, lr)
    optimizer.zero_grad(set_to_none=True)
    total = torch.zeros((), device=micro_batches[0][0].device)
    n = len(micro_batches)
    out = None
    for i, (view1, view2) in enumerate(micro_batches):
        sync = contextlib.nullcontext()
        if i < n - 1 and hasattr(model, "no_sync"):  # DDP: all-reduce only on the last micro-batch
            sync = model.no_sync()
        with sync, autocast or contextlib.nullcontext():
            out = model(view1, view2, return_outputs=True)
        (out.loss / n).backward()
        total += out.loss.detach() / n
    optimizer.step()
    byol.update_target(tau)
    return StepResult(total, out)

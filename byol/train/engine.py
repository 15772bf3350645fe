"""One optimisation step, as a function of state and batch that returns what to log."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import nn

from byol.data.augment import TwoViewAugment
from byol.data.batch import Batch
from byol.data.seeding import seeded_generator
from byol.method import MethodOutput

Views = tuple[torch.Tensor, torch.Tensor]


@dataclass
class StepResult:
    loss: torch.Tensor  # detached scalar on the device, the mean over micro-batches: no host sync here
    output: MethodOutput  # of the last micro-batch, for the monitors
    skipped: torch.Tensor | None = None  # bool on the device: the loss or a gradient was not finite


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Every group at ``lr``, a group marked ``lr_scale`` (``byol.optim.param_groups``) at that multiple of it."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    view_pairs: list[Views],
    lr: float,
    autocast: contextlib.AbstractContextManager | None = None,
) -> StepResult:
    """One gradient step over ``view_pairs`` (one pair of views per micro-batch), their gradients averaged.

    ``model`` is the method module (``BYOL``), or its DDP / compiled wrapper; it is called as
    ``model(view1, view2)`` (a ``MethodOutput``). Under DDP the gradients are all-reduced once, on
    the last micro-batch. The target is not touched here: call ``after_step(tau)`` (BYOL:
    ``update_target``) once per step, however many micro-batches, as the paper emulated large batches.

    When the loss or a gradient is not finite the optimiser does not step (``result.skipped``),
    as AMP's GradScaler skips: on a GPU without a host sync for LARS and fused SGD/AdamW. The norm
    layers' running statistics, which the step's forward passes moved, are put back as they were
    before it (``NormStatistics``): a skipped step leaves no trace, NaN statistics included.
    """
    statistics = NormStatistics(model)
    set_lr(optimizer, lr)
    optimizer.zero_grad(set_to_none=True)
    total = torch.zeros((), device=view_pairs[0][0].device)
    n = len(view_pairs)
    out = None
    for i, (view1, view2) in enumerate(view_pairs):
        sync = contextlib.nullcontext()
        if i < n - 1 and hasattr(model, "no_sync"):  # DDP: all-reduce only on the last micro-batch
            sync = model.no_sync()
        with sync, autocast or contextlib.nullcontext():
            out = model(view1, view2)
        (out.loss / n).backward()
        total += out.loss.detach() / n
    skipped = non_finite(total, optimizer)
    statistics.restore_if(skipped)
    guarded_step(optimizer, skipped)
    return StepResult(total, out, skipped)


class NormStatistics:
    """The running statistics of ``model``'s norm layers (BatchNorm's mean, variance and count, online
    and target), copied when made; ``restore_if(flag)`` puts them back where a device flag says so.

    A forward pass in train mode moves them before the loss is known: one batch that turns non-finite
    leaves NaN in every running mean behind it, for good, unless they are put back. The copy is one
    flat tensor per dtype and the restore a ``torch.where`` on the device: no host sync, a few kernels
    per step whatever the depth of the network.
    """

    def __init__(self, model: nn.Module):
        buffers: dict[torch.dtype, list[torch.Tensor]] = {}
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._NormBase) and m.track_running_stats:
                for b in (m.running_mean, m.running_var, m.num_batches_tracked):
                    if b is not None:
                        buffers.setdefault(b.dtype, []).append(b)
        self.buffers = list(buffers.values())
        self.saved = [_flat(group) for group in self.buffers]  # torch.cat copies

    def restore_if(self, flag: torch.Tensor) -> None:
        for group, saved in zip(self.buffers, self.saved):
            kept = torch.where(flag.to(saved.device), saved, _flat(group))
            torch._foreach_copy_(group, [v.view_as(b) for v, b in zip(kept.split([b.numel() for b in group]), group)])


def _flat(tensors: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for t in tensors])


def non_finite(loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> torch.Tensor:
    """Whether the loss or any gradient holds an inf or a NaN: one reduction on the device, no sync."""
    grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
    norms = torch.stack(torch._foreach_norm(grads)).sum() if grads else torch.zeros((), device=loss.device)
    return ~torch.isfinite(loss + norms.to(loss.device))


def guarded_step(optimizer: torch.optim.Optimizer, skip: torch.Tensor) -> None:
    """``optimizer.step()`` unless ``skip``. Optimisers that take a device flag (LARS; SGD and AdamW
    when fused) get it as ``found_inf`` and decide on the device; the others cost a host sync, which
    on a CPU is free (nothing runs ahead of the host there)."""
    if getattr(optimizer, "_step_supports_amp_scaling", False) and skip.device.type != "cpu":
        optimizer.found_inf = skip.float()
        try:
            optimizer.step()
        finally:
            del optimizer.found_inf
    elif not skip.item():
        optimizer.step()


def make_views(
    augment: TwoViewAugment,
    batch: Batch,
    device: torch.device,
    generator: torch.Generator,
    memory_format: torch.memory_format = torch.contiguous_format,
) -> Views:
    """BYOL's two augmented views of a batch, on ``device``: whole images cropped there, or two crops."""
    images, crops = batch.on(device)
    views = augment(images, generator) if images is not None else augment(generator=generator, crops=crops)
    return tuple(v.contiguous(memory_format=memory_format) for v in views)


def augmentation_generator(seed: int, rank: int, step: int, micro: int, device: torch.device) -> torch.Generator:
    """The augmentation draws of a micro-batch: a function of (seed, rank, step, micro-batch); ranks differ."""
    return seeded_generator(seed, 53, rank, step, micro, device=device)

"""LARS: layer-wise adaptive rate scaling (You et al. 2017), as used by SimCLR and BYOL."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch.optim import Optimizer


class LARS(Optimizer):
    """SGD with momentum whose per-tensor step is scaled by a trust ratio.

    For a tensor ``p`` with gradient ``g`` in a group that is not excluded:
    ``g ← g + wd·p``, ``trust = η·‖p‖/‖g‖`` (1 when either norm is 0), ``g ← trust·g``;
    with ``clip`` the adapted rate ``trust`` never exceeds the run's lr (``g ← min(trust/lr, 1)·g``,
    as NVIDIA's LARC and solo-learn's CIFAR recipe). Then ``v ← m·v + g`` and ``p ← p − lr·v``. A group
    marked ``lr_scale`` (``byol.optim.param_groups``: the predictor's lr × 10) has ``lr`` that multiple of
    the run's, and its clip is still the run's lr: its steps are ``lr_scale`` times as long, clipped or not.

    Groups with ``lars_exclude=True`` (biases and normalisation parameters, see
    ``byol.optim.param_groups``) get neither weight decay nor the trust ratio, as in the paper.

    Like PyTorch's fused optimisers, it takes a device flag ``found_inf`` (set as an attribute, as
    AMP's GradScaler does): where it is 1 the step leaves parameters and momentum unchanged, decided
    on the device without a host sync.

    Args:
        params: parameters or groups; a group may set ``lars_exclude``.
        lr: learning rate (> 0 except while warming up: 0 allowed).
        momentum: in [0, 1).
        weight_decay: >= 0.
        trust_coefficient: η > 0 (1e-3 in the paper).
        clip: clip the adapted rate to the run's lr (a group's lr over its ``lr_scale``).
        eps: added to the denominator of the trust ratio.
        compiled: run each group's update as one ``torch.compile``d graph (for a GPU: the trust
            ratios, the momentum and the select of a skipped step fused into a few kernels instead of
            a launch per tensor); equal to the eager step to float tolerance.
    """

    def __init__(
        self,
        params: Iterable[torch.nn.Parameter] | Iterable[dict[str, Any]],
        lr: float,
        momentum: float = 0.9,
        weight_decay: float = 1.5e-6,
        trust_coefficient: float = 1e-3,
        clip: bool = False,
        eps: float = 0.0,
        compiled: bool = False,
    ):
        if lr < 0:
            raise ValueError(f"LARS: lr must be >= 0, got {lr}")
        if not 0 <= momentum < 1:
            raise ValueError(f"LARS: momentum must be in [0, 1), got {momentum}")
        if weight_decay < 0:
            raise ValueError(f"LARS: weight_decay must be >= 0, got {weight_decay}")
        if trust_coefficient <= 0:
            raise ValueError(f"LARS: trust_coefficient must be > 0, got {trust_coefficient}")
        defaults = dict(
            lr=lr,
            momentum=momentum,
            weight_decay=weight_decay,
            trust_coefficient=trust_coefficient,
            clip=clip,
            eps=eps,
            lars_exclude=False,
        )
        super().__init__(params, defaults)
        self._step_supports_amp_scaling = True  # reads ``found_inf``
        self.compiled = compiled
        self._compiled_update = None
        self._scalars: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        found_inf = getattr(self, "found_inf", None)
        for index, group in enumerate(self.param_groups):
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            for p in params:
                if "momentum_buffer" not in self.state[p]:
                    self.state[p]["momentum_buffer"] = torch.zeros_like(p)
            bufs = [self.state[p]["momentum_buffer"] for p in params]
            grads = [p.grad for p in params]
            options = {k: group[k] for k in ("momentum", "weight_decay", "trust_coefficient", "clip", "eps")}
            options["lr_scale"] = group.get("lr_scale", 1.0)
            adapt = not group["lars_exclude"]
            if not self.compiled:
                lars_update(params, grads, bufs, group["lr"], found_inf, adapt=adapt, **options)
                continue
            # one graph per group, reused at every step: lr and the skip flag are device tensors, not
            # constants the graph would be specialised on
            lr, skip = self._device_scalars(index, params[0].device)
            lr.fill_(group["lr"])
            if found_inf is not None:
                skip.copy_(found_inf.bool())
            else:
                skip.fill_(False)
            if self._compiled_update is None:
                self._compiled_update = torch.compile(lars_update, dynamic=False)
            self._compiled_update(params, grads, bufs, lr, skip, adapt=adapt, **options)
        return loss

    def _device_scalars(self, index: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """The (lr, skip) tensors of group ``index`` on ``device``; skip stays False without ``found_inf``."""
        if index not in self._scalars:
            self._scalars[index] = (torch.zeros((), device=device), torch.zeros((), dtype=torch.bool, device=device))
        return self._scalars[index]


def lars_update(
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    bufs: list[torch.Tensor],
    lr: float | torch.Tensor,
    skip: torch.Tensor | None,
    *,
    momentum: float,
    weight_decay: float,
    trust_coefficient: float,
    clip: bool,
    eps: float,
    adapt: bool,
    lr_scale: float = 1.0,
) -> None:
    """One LARS step over a group's tensors, in place (see ``LARS``): eager with a float ``lr``, or
    compiled with ``lr`` a 0-d tensor. Where ``skip`` (a 0-d device flag) is set, parameters and
    momentum keep their values, even where the gradients hold NaN."""
    if adapt:
        if weight_decay:
            grads = torch._foreach_add(grads, params, alpha=weight_decay)
        p_norm = torch.stack(torch._foreach_norm(params))
        g_norm = torch.stack(torch._foreach_norm(grads))
        trust = torch.where(
            (p_norm > 0) & (g_norm > 0),
            trust_coefficient * p_norm / (g_norm + eps),
            torch.ones_like(p_norm),
        )
        cap = lr / lr_scale  # the run's lr: the clip of a scaled group too
        if clip and isinstance(lr, torch.Tensor):  # trust / 0 is inf, clamped to 1, and not taken
            trust = torch.where(cap > 0, torch.clamp(trust / cap, max=1.0), trust)
        elif clip and cap > 0:
            trust = torch.clamp(trust / cap, max=1.0)
        grads = torch._foreach_mul(grads, list(trust.unbind()))
    if skip is None:
        torch._foreach_mul_(bufs, momentum)
        torch._foreach_add_(bufs, grads)
        torch._foreach_add_(params, bufs, alpha=-lr)
        return
    new_bufs = torch._foreach_add(torch._foreach_mul(bufs, momentum), grads)
    if isinstance(lr, torch.Tensor):
        new_params = torch._foreach_sub(params, torch._foreach_mul(new_bufs, lr))
        for old, new in zip(bufs + params, new_bufs + new_params):  # fused into a few kernels when compiled
            old.copy_(torch.where(skip, old, new))
        return
    new_params = torch._foreach_add(params, new_bufs, alpha=-lr)
    skip = skip.bool()
    for old, new in zip(bufs + params, new_bufs + new_params):  # no NaN-safe foreach select exists
        torch.where(skip, old, new, out=old)  # in place: a skipped step keeps the old values

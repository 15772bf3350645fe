"""LARS: layer-wise adaptive rate scaling (You et al. 2017), as used by SimCLR and BYOL."""

from __future__ import annotations

import torch
from torch.optim import Optimizer


class LARS(Optimizer):
    """SGD with momentum whose per-tensor step is scaled by a trust ratio.

    For a tensor ``p`` with gradient ``g`` in a group that is not excluded:
    ``g ← g + wd·p``, ``trust = η·‖p‖/‖g‖`` (1 when either norm is 0), ``g ← trust·g``;
    with ``clip`` the adapted rate ``trust`` never exceeds the global lr (``g ← min(trust/lr, 1)·g``,
    as NVIDIA's LARC and solo-learn's CIFAR recipe). Then ``v ← m·v + g`` and ``p ← p − lr·v``.

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
        clip: clip the adapted rate to the global lr.
        eps: added to the denominator of the trust ratio.
    """

    def __init__(
        self,
        params,
        lr: float,
        momentum: float = 0.9,
        weight_decay: float = 1.5e-6,
        trust_coefficient: float = 1e-3,
        clip: bool = False,
        eps: float = 0.0,
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

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            lr = group["lr"]
            if not group["lars_exclude"]:
                if group["weight_decay"]:
                    grads = torch._foreach_add(grads, params, alpha=group["weight_decay"])
                p_norm = torch.stack(torch._foreach_norm(params))
                g_norm = torch.stack(torch._foreach_norm(grads))
                trust = torch.where(
                    (p_norm > 0) & (g_norm > 0),
                    group["trust_coefficient"] * p_norm / (g_norm + group["eps"]),
                    torch.ones_like(p_norm),
                )
                if group["clip"] and lr > 0:
                    trust = torch.clamp(trust / lr, max=1.0)
                grads = torch._foreach_mul(grads, list(trust.unbind()))
            for p in params:
                if "momentum_buffer" not in self.state[p]:
                    self.state[p]["momentum_buffer"] = torch.zeros_like(p)
            bufs = [self.state[p]["momentum_buffer"] for p in params]
            found_inf = getattr(self, "found_inf", None)
            if found_inf is None:
                torch._foreach_mul_(bufs, group["momentum"])
                torch._foreach_add_(bufs, grads)
                torch._foreach_add_(params, bufs, alpha=-lr)
                continue
            new_bufs = torch._foreach_add(torch._foreach_mul(bufs, group["momentum"]), grads)
            new_params = torch._foreach_add(params, new_bufs, alpha=-lr)
            skip = found_inf.bool()
            for old, new in zip(bufs + params, new_bufs + new_params):  # no NaN-safe foreach select exists
                torch.where(skip, old, new, out=old)  # in place: a skipped step keeps the old values
        return loss

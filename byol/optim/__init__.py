"""Optimisers by name, with the paper's parameter groups."""

from __future__ import annotations

import contextlib
import logging

import torch
from torch import nn

from byol.config.registry import register_choices
from byol.optim.lars import LARS

log = logging.getLogger(__name__)

OPTIMIZERS = ("lars", "sgd", "adamw")
register_choices("optim.optimizer", lambda: OPTIMIZERS)


def param_groups(
    modules: nn.Module | list[nn.Module], weight_decay: float, lr_scales: list[float] | None = None
) -> list[dict]:
    """Split trainable parameters into a decayed group and an excluded one (two of each lr scale).

    Biases and normalisation parameters (every tensor with at most one dimension) are excluded
    from weight decay and, under LARS, from the trust-ratio adaptation (Grill et al. 2020, app. C),
    and so are those a submodule names in ``no_weight_decay()`` (timm's convention: a ViT's
    position embedding and class token). ``lr_scales``: one per module, its lr as a multiple of the
    run's; the modules of a scale other than 1 get two groups of their own, marked ``lr_scale``
    (``byol.train.engine.set_lr`` applies it). Without them: the same two groups as always. A
    parameter two modules share stays in the first one's groups.
    """
    if isinstance(modules, nn.Module):
        modules = [modules]
    scales = lr_scales or [1.0] * len(modules)
    by_scale: dict[float, tuple[list, list]] = {}
    seen: set[int] = set()
    for module, scale in zip(modules, scales, strict=True):
        named = _no_weight_decay(module)
        decay, excluded = by_scale.setdefault(float(scale), ([], []))
        for p in module.parameters():
            if not p.requires_grad or id(p) in seen:
                continue
            seen.add(id(p))
            (excluded if p.ndim <= 1 or id(p) in named else decay).append(p)
    groups = []
    for scale, (decay, excluded) in sorted(by_scale.items(), key=lambda kv: kv[0] != 1.0):
        marked = {} if scale == 1.0 else {"lr_scale": scale}
        log.info("optimizer groups: %d tensors decayed/adapted, %d excluded (biases, norms)%s", len(decay),
                 len(excluded), f", lr × {scale:g}" if marked else "")  # fmt: skip
        groups += [
            {"params": decay, "weight_decay": weight_decay, "lars_exclude": False, **marked},
            {"params": excluded, "weight_decay": 0.0, "lars_exclude": True, **marked},
        ]
    return groups


def _no_weight_decay(module: nn.Module) -> set[int]:
    """Ids of the parameters that submodules list in their ``no_weight_decay()`` (names relative to them)."""
    ids = set()
    for sub in module.modules():
        names = getattr(sub, "no_weight_decay", None)
        if not callable(names):
            continue
        for name in names():
            with contextlib.suppress(AttributeError):  # a name pattern or a missing parameter: nothing to exclude
                ids.add(id(sub.get_parameter(name)))
    return ids


KERNEL_KEYS = ("fused", "foreach")  # how PyTorch's optimisers compute a step, not what they learned


def fused_kernels(params) -> bool | None:
    """True where PyTorch's fused SGD and AdamW kernels serve every parameter and are the fast ones: on a
    GPU (where they also skip a flagged step on the device) and on a CPU (AdamW 3.7×, SGD 2.4× the foreach
    kernels' speed: docs/results/fused-optimizer-cpu/); None (PyTorch's default) elsewhere."""
    params = list(params)
    return bool(params) and all(p.device.type in ("cuda", "cpu") for p in params) or None


def with_kernels_of(optimizer: torch.optim.Optimizer, state: dict) -> dict:
    """``state`` (an optimiser's ``state_dict``) with ``optimizer``'s own kernel choices (``KERNEL_KEYS``)
    in its groups: ``load_state_dict`` takes every group setting from the state, so a run saved before
    CPUs took the fused kernels, or moved from a CPU to a GPU, would step with the kernels it was saved
    with, not those built for the device it runs on now."""
    groups = [
        {**saved, **{k: optimizer.param_groups[i][k] for k in KERNEL_KEYS if k in optimizer.param_groups[i]}}
        if i < len(optimizer.param_groups) else saved
        for i, saved in enumerate(state["param_groups"])
    ]  # fmt: skip
    return {**state, "param_groups": groups}


def build_optimizer(
    name: str,
    groups: list[dict],
    lr: float,
    weight_decay: float,
    momentum: float = 0.9,
    trust_coefficient: float = 1e-3,
    clip: bool = False,
    compiled: bool = False,
    fused: bool = True,
) -> torch.optim.Optimizer:
    """``lars`` (the paper), ``sgd`` (momentum) or ``adamw``, over groups from ``param_groups``; SGD and
    AdamW with the fused kernels where they serve (``fused_kernels``) unless ``fused`` is False."""
    if name == "lars":
        return LARS(groups, lr, momentum, weight_decay, trust_coefficient, clip, compiled=compiled)
    fused = fused_kernels(p for g in groups for p in g["params"]) if fused else None
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, weight_decay=weight_decay, fused=fused)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay, fused=fused)
    raise ValueError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")

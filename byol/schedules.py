"""Schedules as pure functions of the step, so that resuming needs only the step.

A run of fixed length uses ``lr_schedule`` and ``tau_schedule`` as they are. A time budget learns
its length as it goes (``byol.train.state.Schedule``): each new estimate lays the rest of each curve
from where it stands (``ramp`` from a start value), so the lr and τ bend but never jump.
"""

from __future__ import annotations

import math


def ramp(step: float, start: float, end: float, start_value: float = 0.0) -> float:
    """Linear from ``start_value`` at ``start`` to 1 at ``end``, held at its ends outside them."""
    if end <= start:
        return 1.0
    return min(max(start_value + (1.0 - start_value) * (step - start) / (end - start), start_value), 1.0)


def cosine(progress: float) -> float:
    """Half a cosine from 1 (progress 0) down to 0 (progress 1)."""
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def tau_at(progress: float, tau_base: float) -> float:
    """τ at ``progress`` (k/K) of the run: ``1 − (1 − τ_base)·(cos(π·progress) + 1)/2``; 0 held at 0."""
    if tau_base == 0.0:
        return 0.0
    return 1.0 - (1.0 - tau_base) * cosine(progress)


def tau_schedule(step: int, total_steps: int, tau_base: float = 0.996) -> float:
    """Target decay rate: ``τ_k = 1 − (1 − τ_base)·(cos(πk/K) + 1)/2`` (Grill et al. 2020, §3.2).

    Starts at ``tau_base`` for k = 0 and reaches exactly 1 at k = K. The paper's two fixed ablations
    (table 5a) are its ends: ``tau_base = 1`` keeps the target frozen at its random start, and
    ``tau_base = 0`` is held at 0 (the target is the online network at every step), not scheduled.
    """
    if tau_base == 0.0:
        return 0.0
    if total_steps <= 0:
        return 1.0
    return tau_at(ramp(step, 0, total_steps), tau_base)


def scaled_lr(base_lr: float, batch_size: int) -> float:
    """Linear scaling rule: ``lr = base_lr × batch_size / 256``."""
    return base_lr * batch_size / 256


def warmup_steps(warmup_epochs: float, steps_per_epoch: int, total_steps: int) -> int:
    """Warm-up epochs in steps, at most half of the run (a short run still gets its cosine)."""
    return min(round(warmup_epochs * steps_per_epoch), total_steps // 2)


def lr_schedule(step: int, total_steps: int, peak_lr: float, warmup_steps: int = 0) -> float:
    """Linear warmup from 0 to ``peak_lr`` over ``warmup_steps``, then cosine decay to 0 at ``total_steps``."""
    if warmup_steps > 0 and step < warmup_steps:
        return peak_lr * step / warmup_steps
    return peak_lr * cosine(ramp(step, warmup_steps, max(total_steps, warmup_steps + 1)))

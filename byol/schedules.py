"""Schedules as pure functions of the step, so that resuming needs only the step."""

from __future__ import annotations

import math


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
    k = min(max(step, 0), total_steps)
    return 1.0 - (1.0 - tau_base) * (math.cos(math.pi * k / total_steps) + 1.0) / 2.0


def scaled_lr(base_lr: float, batch_size: int) -> float:
    """Linear scaling rule: ``lr = base_lr × batch_size / 256``."""
    return base_lr * batch_size / 256


def lr_schedule(step: int, total_steps: int, peak_lr: float, warmup_steps: int = 0) -> float:
    """Linear warmup from 0 to ``peak_lr`` over ``warmup_steps``, then cosine decay to 0 at ``total_steps``."""
    if warmup_steps > 0 and step < warmup_steps:
        return peak_lr * step / warmup_steps
    decay_steps = max(total_steps - warmup_steps, 1)
    progress = min(max(step - warmup_steps, 0) / decay_steps, 1.0)
    return peak_lr * 0.5 * (1.0 + math.cos(math.pi * progress))

"""The lr and τ curves of a run, in one place: a frozen ``Plan`` with pure ``lr_at`` / ``tau_at``.

A run of fixed length is one plan from start to end: linear warm-up to the peak lr, then a cosine
down to 0; τ from τ_base up to 1 on a cosine (Grill et al. 2020, §3.2). A run whose length changes
as it goes (a time budget's estimates, an extension to more epochs or minutes) gets a new plan at
the step of the change (``relaid``, ``extended``) that starts from the values the old one had there,
so the lr and τ bend but never jump. ``byol pretrain`` checkpoints its plan (``as_dict``); Lightning,
the evaluation protocols and the benchmarks call the same functions (``lr_schedule`` and
``tau_schedule`` are a fixed plan's curves, for callers that have no plan of their own).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

PROVISIONAL_EPOCHS = 1000  # a time budget's length until its first estimate from measured speed


def ramp(step: float, start: float, end: float, start_value: float = 0.0) -> float:
    """Linear from ``start_value`` at ``start`` to 1 at ``end`` (up, or down from above 1), held at its
    ends outside them."""
    if end <= start:
        return 1.0
    low, high = min(start_value, 1.0), max(start_value, 1.0)
    return min(max(start_value + (1.0 - start_value) * (step - start) / (end - start), low), high)


def cosine(progress: float) -> float:
    """Half a cosine from 1 (progress 0) down to 0 (progress 1)."""
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def tau_of_progress(progress: float, tau_base: float) -> float:
    """τ at ``progress`` (k/K) of the run: ``1 − (1 − τ_base)·(cos(π·progress) + 1)/2``; 0 held at 0."""
    if tau_base == 0.0:
        return 0.0
    return 1.0 - (1.0 - tau_base) * cosine(progress)


def scaled_lr(base_lr: float, batch_size: int) -> float:
    """Linear scaling rule: ``lr = base_lr × batch_size / 256``."""
    return base_lr * batch_size / 256


def warmup_steps(warmup_epochs: float, steps_per_epoch: int, total_steps: int) -> int:
    """Warm-up epochs in steps, at most half of the run (a short run still gets its cosine)."""
    return min(round(warmup_epochs * steps_per_epoch), total_steps // 2)


@dataclass(frozen=True)
class Plan:
    """The steps of a run and its lr and τ at each: fixed for an epoch count, estimated from speed
    for a time budget (``budget_seconds``; ``estimated`` once the first estimate is made).

    A plan re-laid at ``anchor_step`` goes on from the progresses it had there (``warmup_from``: lr /
    peak in the warm-up; ``decay_from``: the lr's cosine progress after it; ``tau_from``: τ's cosine
    progress); ``tau_to`` is an extension's re-warm, τ's progress at the end of its warm-up.
    """

    total_steps: int
    warmup_steps: int = 0
    steps_per_epoch: int = 1
    estimated: bool = False
    budget_seconds: float | None = None
    anchor_step: int = 0
    warmup_from: float = 0.0
    decay_from: float = 0.0
    tau_from: float = 0.0
    tau_to: float | None = None

    @classmethod
    def for_run(
        cls, steps_per_epoch: int, warmup_epochs: float, epochs: float, budget_seconds: float | None = None
    ) -> Plan:
        """A new run's plan: ``epochs`` long, or provisionally ``PROVISIONAL_EPOCHS`` under a time budget
        (its first estimate re-lays it, ``relaid(..., warmup_steps=...)``)."""
        total = steps_per_epoch * PROVISIONAL_EPOCHS if budget_seconds is not None else round(epochs * steps_per_epoch)
        total = max(1, total)
        return cls(total, warmup_steps(warmup_epochs, steps_per_epoch, total), steps_per_epoch, False, budget_seconds)

    @classmethod
    def from_dict(cls, saved: dict[str, Any]) -> Plan:
        return cls(**saved)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    # ---- the curves ---------------------------------------------------------------------------

    def lr_at(self, step: int, peak: float = 1.0) -> float:
        """Linear warm-up to ``peak``, then a cosine down to 0 at ``total_steps``."""
        if step < self.warmup_steps:  # to the lr the cosine starts from: the peak, but after an extension
            return peak * cosine(self.decay_from) * self._warmup_progress(step)
        return peak * cosine(self._decay_progress(step))

    def tau_at(self, step: int, tau_base: float) -> float:
        """τ from ``tau_base`` up to exactly 1 at ``total_steps``; τ_base 1 stays 1, 0 stays 0."""
        if self.total_steps <= 0:
            return 1.0 if tau_base != 0.0 else 0.0
        return tau_of_progress(self._tau_progress(step), tau_base)

    def decay_progress(self, step: int) -> float:
        """How far down its cosine the lr is at ``step`` (0 at the peak, 1 at the end): 0 while warming up."""
        return 0.0 if step < self.warmup_steps else self._decay_progress(step)

    def tau_progress(self, step: int) -> float:
        """How far up its cosine τ is at ``step`` (0 at τ_base, 1 at 1)."""
        return self._tau_progress(step)

    def _warmup_progress(self, step: int) -> float:
        start, value = (self.anchor_step, self.warmup_from) if self.anchor_step < self.warmup_steps else (0, 0.0)
        return ramp(step, start, self.warmup_steps, value)

    def _decay_progress(self, step: int) -> float:
        if self.anchor_step >= self.warmup_steps:
            return ramp(step, self.anchor_step, max(self.total_steps, self.anchor_step + 1), self.decay_from)
        # From the warm-up's end; an extension's re-warm ends part-way down the cosine (decay_from).
        return ramp(step, self.warmup_steps, max(self.total_steps, self.warmup_steps + 1), self.decay_from)

    def _tau_progress(self, step: int) -> float:
        if self.tau_to is None:
            return ramp(step, self.anchor_step, self.total_steps, self.tau_from)
        if step < self.warmup_steps:  # an extension's re-warm: τ's progress moves linearly to tau_to
            share = (step - self.anchor_step) / max(self.warmup_steps - self.anchor_step, 1)
            return self.tau_from + (self.tau_to - self.tau_from) * min(max(share, 0.0), 1.0)
        return ramp(step, self.warmup_steps, self.total_steps, self.tau_to)

    # ---- new plans from a step ----------------------------------------------------------------

    def relaid(self, step: int, total_steps: int, warmup_steps: int | None = None) -> Plan:
        """The rest of the run, from ``step`` on, laid over ``total_steps`` (and ``warmup_steps``, which
        may only be given while ``step`` is still in the warm-up): lr and τ continue from their values
        at ``step``, so nothing jumps."""
        warming, warmup = step < self.warmup_steps, self.warmup_steps
        progress = self._warmup_progress(step) if warming else self._decay_progress(step)
        if warmup_steps is not None and warming:
            warmup = max(warmup_steps, step)
            if step == warmup:  # a budget too short for its warm-up (or a ramp cut short): decay from
                # the lr reached, whatever the ramp's target (a budget's ramp may be coming down to it)
                warming, progress = False, math.acos(2.0 * min(max(self.lr_at(step), 0.0), 1.0) - 1.0) / math.pi
        # While warming, the warm-up keeps its target (the peak; an extension's re-warm: part-way down).
        warmup_from, decay_from = (progress, self.decay_from) if warming else (1.0, progress)
        return dataclasses.replace(
            self, warmup_steps=warmup, anchor_step=step, total_steps=max(total_steps, step + 1),
            warmup_from=warmup_from, decay_from=decay_from, tau_from=self._tau_progress(step), tau_to=None,
        )  # fmt: skip

    def extended(self, step: int, total_steps: int, warmup_steps: int) -> Plan:
        """A run that has trained ``step`` steps laid over a longer ``total_steps`` (its warm-up, planned
        at the new length: ``warmup_steps``), with no jump in lr or τ.

        Where the new length's lr at ``step`` is above the present one (always, for a run that had
        finished: its lr had decayed to 0 and τ risen to 1), both are re-warmed (``rewarmed``): over the
        warm-up's length (at most half the steps left) lr and τ's progress go linearly from their values
        at ``step`` to the new length's schedule, which they follow from there to the end (lr 0, τ 1).
        Otherwise the rest of the run is re-laid from ``step`` as a time budget's estimate is.
        """
        if step < self.warmup_steps or step < warmup_steps:  # still warming up: the warm-up goes on
            return self.relaid(step, total_steps, max(warmup_steps, step) if step < self.warmup_steps else None)
        end = step + max(1, min(warmup_steps, (total_steps - step) // 2))
        planned = (end - warmup_steps) / max(total_steps - warmup_steps, 1)  # the new length's cosine progress
        if self.lr_at(step) >= cosine(planned):
            return self.relaid(step, total_steps)
        return self.rewarmed(step, total_steps, end, planned, end / total_steps)

    def rewarmed(self, step: int, total_steps: int, ramp_end: int, decay_to: float, tau_to: float) -> Plan:
        """The rest of the run from ``step``: the lr goes linearly from its value at ``step`` to the
        cosine's value at progress ``decay_to`` by ``ramp_end``, then down that cosine to 0 at
        ``total_steps``; τ's progress goes linearly to ``tau_to`` by ``ramp_end``, then up to 1. For an lr
        that is not where the run's length (or a budget's clock) calls for: it climbs back, or comes
        down, without a jump."""
        return dataclasses.replace(
            self, anchor_step=step, warmup_steps=ramp_end, total_steps=max(total_steps, ramp_end + 1),
            warmup_from=self.lr_at(step) / max(cosine(decay_to), 1e-12), decay_from=decay_to,
            tau_from=self._tau_progress(step), tau_to=tau_to,
        )  # fmt: skip

    def ended_at(self, step: int) -> Plan:
        """The plan of a run stopped at ``step`` (its time budget spent): the same curves, ending there."""
        return dataclasses.replace(self, total_steps=step)


def lr_schedule(step: int, total_steps: int, peak_lr: float, warmup_steps: int = 0) -> float:
    """Linear warmup from 0 to ``peak_lr`` over ``warmup_steps``, then cosine decay to 0 at ``total_steps``:
    a fixed ``Plan``'s lr."""
    return Plan(total_steps, warmup_steps).lr_at(step, peak_lr)


def tau_schedule(step: int, total_steps: int, tau_base: float = 0.996) -> float:
    """Target decay rate: ``τ_k = 1 − (1 − τ_base)·(cos(πk/K) + 1)/2`` (Grill et al. 2020, §3.2), a fixed
    ``Plan``'s τ.

    Starts at ``tau_base`` for k = 0 and reaches exactly 1 at k = K. The paper's two fixed ablations
    (table 5a) are its ends: ``tau_base = 1`` keeps the target frozen at its random start, and
    ``tau_base = 0`` is held at 0 (the target is the online network at every step), not scheduled.
    """
    return Plan(total_steps).tau_at(step, tau_base)

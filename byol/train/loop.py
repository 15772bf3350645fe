"""BYOL's training loop, as the paper's algorithm box reads (Grill et al. 2020, algorithm 1).

For each step: two augmented views of each image of the batch, one gradient step of the online
network on the symmetrised loss, then the target's move towards it (τ), then the periodic
concerns (``byol.train.hooks``), each deciding for itself whether this step is its step.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import torch

from byol import faults
from byol.data.batch import Batch
from byol.train.engine import augmentation_generator, make_views, train_step
from byol.train.hooks.base import Hook, StepEvent, check_order
from byol.train.setup import Run
from byol.train.state import TrainState

log = logging.getLogger(__name__)


def train_loop(run: Run, state: TrainState, hooks: list[Hook]) -> None:
    """Train from ``state.step`` until the schedule ends or a hook stops the run (its ``Stop``)."""
    check_order(hooks)
    cfg = run.cfg
    run.method.train()
    state.start_sitting()
    try:
        while not state.finished:
            for batches in step_batches(run, state.step):
                # The step's forward passes: each of its ``accumulate`` batches in ``passes_per_batch`` micro-batches.
                micro_batches = [micro for batch in batches for micro in batch.split(run.passes_per_batch)]
                views = [
                    make_views(run.augment, micro, run.device, generator, run.memory_format)
                    for generator, micro in zip(_generators(run, state.step, len(micro_batches)), micro_batches)
                ]
                lr = state.plan.lr_at(state.step, run.peak_lr)
                tau = state.plan.tau_at(state.step, cfg.optim.tau_base)
                if cfg.run.compile:  # CUDA graphs (reduce-overhead): a new iteration, last outputs done with
                    torch.compiler.cudagraph_mark_step_begin()
                result = train_step(run.model, run.optimizer, views, lr, run.autocast())
                faults.reached(f"step:{state.step + 1}")
                run.method.after_step(tau)  # BYOL: θ' ← τ·θ' + (1 − τ)·θ
                state.step += 1
                if state.started is None:  # the sitting's first step: compilation, not training time
                    state.first_step_done(run.device)
                event = StepEvent(state, lr, tau, result, micro_batches[-1].labels)
                for hook in hooks:
                    stop = hook.after_step(event)
                    if stop is not None and state.stop is None:
                        state.stop = stop
                        log.info("stopping after step %d: %s", state.step, stop.reason)
                if state.finished:
                    break
    finally:
        for hook in hooks:
            hook.close()


def step_batches(run: Run, step: int) -> Iterator[list[Batch]]:
    """The rest of the epoch that ``step`` falls in, one list of ``accumulate`` batches per step (the loop
    splits each into ``passes_per_batch`` micro-batches)."""
    accumulate = run.cfg.optim.accumulate
    epoch = step // run.steps_per_epoch
    start_batch = (step - epoch * run.steps_per_epoch) * accumulate
    group: list[Batch] = []
    for batch in run.data.epoch(epoch, start_batch, pin_memory=run.device.type == "cuda"):
        group.append(batch)
        if len(group) == accumulate:
            yield group
            group = []


def _generators(run: Run, step: int, n: int):
    return (augmentation_generator(run.cfg.run.seed, run.info.rank, step, i, run.device) for i in range(n))

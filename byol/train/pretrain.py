"""``byol pretrain``: build the run's parts, start or resume its state, run the loop, keep the encoder."""

from __future__ import annotations

import contextlib
import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from byol.build import encoder_meta
from byol.config import Config
from byol.data.source import TrainSource
from byol.device import hardware, resolve_device
from byol.dist import init_distributed, shutdown_distributed
from byol.encoder_io import save_encoder
from byol.files import atomic_write, exclusive_lock
from byol.run_files import RunFiles
from byol.train.checkpoint import list_checkpoints
from byol.train.hooks import default_hooks, results
from byol.train.hooks.knn import knn_summary
from byol.train.loop import train_loop
from byol.train.metrics_file import read_metrics
from byol.train.setup import Run, build_run
from byol.train.signals import Preempted, SignalCatcher
from byol.train.state import TrainState, start_state

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    run_dir: Path
    steps: int
    epochs: float
    images_seen: int
    seconds: float  # of training: each sitting's first step (compilation) left out
    final_loss: float
    knn: dict[str, float] = field(default_factory=dict)
    compile_seconds: float = 0.0  # time to the first step, all sittings
    images_per_sec: float | None = None  # over the timed steps: what the hardware sustains
    resumed_at: int | None = None  # the checkpoint step this sitting went on from; None: it started at step 0


def pretrain(
    cfg: Config,
    run_dir: str | Path,
    resume: bool = True,
    progress: bool = True,
    on_step: Callable[[int], None] | None = None,
    source: TrainSource | None = None,
) -> RunResult:
    """Pretrain an encoder with BYOL as ``cfg`` says, writing everything under ``run_dir``.

    ``resume`` continues from the newest checkpoint in ``run_dir``; ``on_step(step)`` is called
    after every step, checkpoints included (tests use it to interrupt a run). ``source``: the batches
    of a ``byol.data.source.TrainSource`` of one's own instead of those ``cfg.data.path`` names
    (the kNN monitor runs only on a source that is also ``LabelledImages``).
    """
    cfg.validate()
    device = resolve_device(cfg.run.device)
    info = init_distributed(device.type)
    # run.deterministic switches PyTorch's global flag on; the caller's setting comes back at the end.
    deterministic = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    run_dir = Path(run_dir)
    # One run per folder: rank 0 holds an OS lock on RUN_DIR/.lock until the run ends.
    lock = exclusive_lock(RunFiles(run_dir).lock, f"run folder {run_dir}") if info.is_main else contextlib.nullcontext()
    try:
        with lock:
            run = build_run(cfg, run_dir, resume, device, info, source)
            state = start_state(run, resume)
            if state.finished and RunFiles(run.run_dir).is_finished():
                log.info("%s is already complete (%d steps): nothing to do", run.run_dir, state.step)
                return _stored_result(run.run_dir)
            with SignalCatcher() as signals:
                hooks = default_hooks(run, state, progress, on_step, signals)
                train_loop(run, state, hooks)
            if state.preempted is not None:
                newest = list_checkpoints(run.run_dir)
                raise Preempted(state.preempted, state.step, newest[-1] if newest else None)
            return finish(run, state, *results(hooks))
    finally:
        torch.use_deterministic_algorithms(deterministic[0], warn_only=deterministic[1])
        shutdown_distributed(info)


def finish(run: Run, state: TrainState, final_loss: float, knn: dict[str, float]) -> RunResult:
    """Write the encoder users keep and the run's summary (rank 0); the run's result on every rank
    (``final_loss``, ``knn``: what the hooks observed last, ``byol.train.hooks.results``)."""
    seconds = state.elapsed()
    result = RunResult(
        run.run_dir, state.step, state.epoch, state.step * run.images_per_step, seconds, final_loss,
        knn, state.compile_seconds,
        state.timed_steps * run.images_per_step / seconds if state.timed_steps and seconds > 0 else None,
        state.sitting_step or None,
    )  # fmt: skip
    log.info(
        "trained %d steps (%.2f epochs) in %.1f s after %.1f s of compilation and warm-up: %s images/s",
        result.steps, result.epochs, result.seconds, result.compile_seconds,
        "-" if result.images_per_sec is None else f"{result.images_per_sec:,.0f}",
    )  # fmt: skip
    if run.info.is_main:
        cfg = run.cfg
        summary = {
            "steps": result.steps,
            "epochs": result.epochs,
            "images_seen": result.images_seen,
            "seconds": result.seconds,
            "compile_seconds": result.compile_seconds,
            "images_per_sec": result.images_per_sec,
            "precision": run.precision,
            "precision_reason": run.policy.precision_reason,
            **hardware(run.device),
            "final_loss": result.final_loss,
            "images": len(run.data),  # the training set's size (the model card says it)
            **({"extended": state.extensions} if state.extensions else {}),
            **result.knn,
            **knn_summary(read_metrics(run.run_dir)),  # knn_final and knn_max, with their step and protocol
            # Unreadable files, skipped (streamed data: those this process met; rank 0's share under torchrun).
            "micro_batch": math.ceil(cfg.optim.batch_size / run.passes_per_batch),
            "skipped_images": len(run.data.skipped),
            "skipped_files": sorted(run.data.skipped),
        }
        meta = encoder_meta(cfg, run.method.feature_dim)
        save_encoder(run.method.encoder, meta, run.run_dir)  # then the summary: its presence means done
        with atomic_write(RunFiles(run.run_dir).summary, "w") as f:
            f.write(json.dumps(summary, indent=2) + "\n")
    return result


def _stored_result(run_dir: Path) -> RunResult:
    done = json.loads(RunFiles(run_dir).summary.read_text())
    knn = {k: done[k] for k in ("knn_top1", "knn_top5") if k in done}
    return RunResult(
        run_dir, done["steps"], done["epochs"], done["images_seen"], done["seconds"], done["final_loss"], knn,
        done.get("compile_seconds", 0.0), done.get("images_per_sec"), done["steps"],  # resumed at its end
    )  # fmt: skip

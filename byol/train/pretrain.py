"""``byol pretrain``: everything built in sections, then the loop.

Sections: run folder and config → device and seeds → data → model, optimiser, monitors →
resume → schedules → loop (steps, logs, kNN monitor, checkpoints, time budget) → encoder out.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from byol.config import Config, load_yaml, save_yaml
from byol.data.augment import TwoViewAugment
from byol.data.loader import TrainData, seeded_generator
from byol.dist import DistInfo, all_reduce_mean, barrier, from_rank0, init_distributed, shutdown_distributed
from byol.encoder_io import ENCODER_FILE, encoder_meta, save_encoder
from byol.errors import ByolError
from byol.eval.features import extract_features
from byol.eval.knn import knn_accuracy
from byol.method import BYOL
from byol.models.backbones import build_encoder
from byol.optim import build_optimizer, param_groups
from byol.schedules import lr_schedule, tau_schedule
from byol.train import checkpoint as ckpt_io
from byol.train.engine import train_step
from byol.train.monitor import MetricsLogger, OnlineClassifier, effective_rank, projection_std

log = logging.getLogger(__name__)

COLLAPSE_RATIO = 0.1  # projection std × √d below this: warn that the representation collapsed


@dataclass
class Schedule:
    """Steps of the run; fixed for an epoch count, estimated from speed for a time budget."""

    total_steps: int
    warmup_steps: int
    steps_per_epoch: int
    estimated: bool = False  # a time budget's estimate has been made
    budget_seconds: float | None = None

    def lr(self, step: int, peak: float) -> float:
        return lr_schedule(step, self.total_steps, peak, self.warmup_steps)


@dataclass
class RunResult:
    run_dir: Path
    steps: int
    epochs: float
    images_seen: int
    seconds: float
    final_loss: float
    knn: dict[str, float] = field(default_factory=dict)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ByolError(f"--device {name}: CUDA is not available on this machine")
    return device


def _augment_compile(setting: str, device: torch.device) -> bool:
    if setting == "auto":
        return device.type == "cuda" or shutil.which("c++") is not None or shutil.which("g++") is not None
    return setting == "on"


def _sync_bn(setting: str, device: torch.device) -> bool:
    if setting == "on" and device.type != "cuda":
        raise ByolError("model.sync_bn=on needs CUDA (SyncBatchNorm runs on GPUs only); use auto or off on CPU")
    return setting == "on" or (setting == "auto" and device.type == "cuda")


def _warmup_steps(cfg: Config, steps_per_epoch: int, total_steps: int) -> int:
    return min(round(cfg.optim.warmup_epochs * steps_per_epoch), total_steps // 2)


class MonitorData:
    """A fixed held-out split of a labelled training set for the kNN monitor."""

    def __init__(self, data: TrainData, cfg: Config):
        labels = torch.tensor(data.labels)
        perm = torch.randperm(len(labels), generator=seeded_generator(cfg.run.seed, 91))
        n_query = min(max(1, int(len(perm) * cfg.data.monitor_fraction)), 5000)
        self.query_idx = perm[:n_query].sort().values
        self.bank_idx = perm[n_query : n_query + cfg.run.knn_max_bank].sort().values
        self.data, self.cfg, self.num_classes = data, cfg, data.num_classes

    def evaluate(self, encoder, device) -> dict[str, float]:
        mean, std = self.cfg.augment.mean, self.cfg.augment.std
        bank, bank_y = extract_features(encoder, self.data.eval_batches(self.bank_idx), device, mean, std)
        query, query_y = extract_features(encoder, self.data.eval_batches(self.query_idx), device, mean, std)
        acc = knn_accuracy(
            bank, bank_y, query, query_y, self.cfg.run.knn_k, self.cfg.run.knn_temperature, self.num_classes
        )
        return {"knn_top1": acc["top1"], "knn_top5": acc["top5"]}


def _prepare_run_dir(run_dir: Path, cfg: Config, resume: bool, info: DistInfo) -> Config:
    """Create the run folder; on resume the saved config wins (a changed flag is refused)."""
    config_path = run_dir / "config.yaml"
    if config_path.exists() and ckpt_io.list_checkpoints(run_dir):
        if not resume:
            raise ByolError(f"{run_dir} already holds a run; resume it (the default) or choose another --out")
        saved = load_yaml(config_path)
        changed = _differences(saved.to_dict(), cfg.to_dict())
        allowed = {"run.device", "data.workers", "data.path", "run.log_every", "data.cache_dir"}
        changed = [c for c in changed if c not in allowed]
        if changed:
            raise ByolError(
                f"{run_dir} was started with a different config ({', '.join(changed[:3])}); "
                "use a new --out or the same options to resume"
            )
        saved.run.device, saved.data.workers, saved.data.path = cfg.run.device, cfg.data.workers, cfg.data.path
        return saved
    if info.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_yaml(cfg, config_path)
    return cfg


def _differences(a: dict, b: dict, prefix: str = "") -> list[str]:
    out = []
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += _differences(va, vb, f"{prefix}{k}.")
        elif va != vb:
            out.append(f"{prefix}{k}")
    return out


def pretrain(
    cfg: Config,
    run_dir: str | Path,
    resume: bool = True,
    progress: bool = True,
    on_step: Callable[[int], None] | None = None,
) -> RunResult:
    """Pretrain an encoder with BYOL as ``cfg`` says, writing everything under ``run_dir``.

    ``resume`` continues from the newest checkpoint in ``run_dir``; ``on_step(step)`` is called
    after every step, checkpoints included (tests use it to interrupt a run).
    """
    cfg.validate()
    device = resolve_device(cfg.run.device)
    info = init_distributed(device.type)
    try:
        return _pretrain(cfg, Path(run_dir), resume, progress, on_step, device, info)
    finally:
        shutdown_distributed(info)


def _pretrain(
    cfg: Config,
    run_dir: Path,
    resume: bool,
    progress: bool,
    on_step: Callable[[int], None] | None,
    device: torch.device,
    info: DistInfo,
) -> RunResult:
    # ---- run folder, config, device, seeds -------------------------------------------------------
    cfg = _prepare_run_dir(run_dir, cfg, resume, info)
    if device.type == "cuda" and info.distributed:
        device = torch.device("cuda", info.local_rank)
    torch.manual_seed(cfg.run.seed)
    if cfg.run.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=device.type == "cuda")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = not cfg.run.deterministic
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    # ---- data ----------------------------------------------------------------------------------
    if not info.is_main:
        barrier(info)  # rank 0 decodes the image cache once; the others then read it
    data = TrainData(
        cfg.data.path,
        cfg.data.image_size,
        cfg.optim.batch_size,
        cfg.augment.view1,
        cfg.augment.view2,
        seed=cfg.run.seed,
        cache=cfg.data.cache,
        cache_dir=cfg.data.cache_dir or None,
        workers=cfg.data.workers,
        rank=info.rank,
        world_size=info.world_size,
    )
    if info.is_main:
        barrier(info)
    accumulate = cfg.optim.accumulate
    steps_per_epoch = data.batches_per_epoch() // accumulate
    if steps_per_epoch < 1:
        raise ByolError(
            f"{cfg.data.path}: {len(data)} images make {data.batches_per_epoch()} batches, "
            f"fewer than --accumulate {accumulate}"
        )
    augment = TwoViewAugment(
        cfg.data.image_size,
        cfg.augment.view1,
        cfg.augment.view2,
        cfg.augment.mean,
        cfg.augment.std,
        cfg.augment.interpolation,
        compile=_augment_compile(cfg.augment.compile, device),
    )
    log.info(
        "data: %d images%s from %s, %d steps per epoch (batch %d × %d accumulated × %d processes)",
        len(data),
        f" in {data.num_classes} classes" if data.labels else " (unlabelled)",
        cfg.data.path,
        steps_per_epoch,
        cfg.optim.batch_size,
        accumulate,
        info.world_size,
    )

    # ---- model, optimiser, monitors --------------------------------------------------------------
    enc = build_encoder(cfg.model.backbone, cfg.model.width, cfg.data.image_size, cfg.model.small_images)
    byol = BYOL(
        enc.module,
        enc.feature_dim,
        cfg.model.projector_hidden,
        cfg.model.projection_dim,
        cfg.model.predictor_hidden,
        cfg.model.norm,
        cfg.model.use_predictor,
    ).to(device)
    memory_format = torch.channels_last if cfg.run.channels_last else torch.contiguous_format
    byol = byol.to(memory_format=memory_format)
    peak_lr = cfg.optim.peak_lr(info.world_size)
    optimizer = build_optimizer(
        cfg.optim.optimizer,
        param_groups([byol.online_encoder, byol.online_projector, byol.predictor], cfg.optim.weight_decay),
        lr=peak_lr,
        weight_decay=cfg.optim.weight_decay,
        momentum=cfg.optim.momentum,
        trust_coefficient=cfg.optim.trust_coefficient,
        clip=cfg.optim.clip_lr,
    )
    model: torch.nn.Module = byol
    if info.distributed:
        if _sync_bn(cfg.model.sync_bn, device):
            byol = torch.nn.SyncBatchNorm.convert_sync_batchnorm(byol)
        model = torch.nn.parallel.DistributedDataParallel(
            byol, device_ids=[device.index] if device.type == "cuda" else None
        )
    if cfg.run.compile:
        model = torch.compile(model)
    autocast = None
    if cfg.run.precision == "bf16":
        autocast = torch.autocast(device.type, dtype=torch.bfloat16)
    classifier = None
    if cfg.run.online_classifier and data.labels is not None:
        classifier = OnlineClassifier(enc.feature_dim, data.num_classes).to(device)
    monitor = MonitorData(data, cfg) if (data.labels is not None and cfg.run.knn_every > 0) else None
    metrics = MetricsLogger(run_dir, enabled=info.is_main)

    # ---- resume --------------------------------------------------------------------------------
    step, elapsed, schedule = 0, 0.0, None
    found = ckpt_io.latest_checkpoint(run_dir, map_location=device) if resume else None
    if found is not None:
        path, state = found
        ckpt_io.load_state_strict(byol, state["model"], f"checkpoint {path}")
        optimizer.load_state_dict(state["optimizer"])
        if classifier is not None and "classifier" in state:
            classifier.load(state["classifier"])
        ckpt_io.set_rng_state(state["rng"])
        step, elapsed = int(state["step"]), float(state.get("elapsed", 0.0))
        schedule = Schedule(**state["schedule"])
        _truncate_metrics(run_dir, step)
        log.info("resumed from %s at step %d", path, step)

    # ---- schedules -----------------------------------------------------------------------------
    if schedule is None:
        if cfg.run.time_budget is not None:
            # Provisional length until the speed is measured: as if the budget allowed 1000 epochs.
            total = steps_per_epoch * 1000
            schedule = Schedule(
                total, _warmup_steps(cfg, steps_per_epoch, total), steps_per_epoch, False, cfg.run.time_budget * 60
            )
        else:
            total = max(1, round(cfg.run.epochs * steps_per_epoch))
            schedule = Schedule(total, _warmup_steps(cfg, steps_per_epoch, total), steps_per_epoch)

    summary_path = run_dir / "summary.json"
    if step >= schedule.total_steps and summary_path.exists() and (run_dir / ENCODER_FILE).exists():
        log.info("%s is already complete (%d steps): nothing to do", run_dir, step)
        done = json.loads(summary_path.read_text())
        knn_done = {k: done[k] for k in ("knn_top1", "knn_top5") if k in done}
        return RunResult(
            run_dir, done["steps"], done["epochs"], done["images_seen"], done["seconds"], done["final_loss"], knn_done
        )

    # ---- loop ----------------------------------------------------------------------------------
    state_fn = lambda s: _checkpoint_state(byol, optimizer, classifier, s, schedule, cfg, elapsed_now())  # noqa: E731
    loop_start = time.perf_counter() - elapsed

    def elapsed_now() -> float:
        return time.perf_counter() - loop_start

    images_per_step = cfg.optim.batch_size * accumulate * info.world_size
    last_ckpt_time = time.perf_counter()
    pbar = None
    if progress and info.is_main:
        from tqdm import tqdm

        pbar = tqdm(
            total=schedule.total_steps,
            initial=step,
            unit="step",
            dynamic_ncols=True,
            mininterval=1 if sys.stderr.isatty() else 30,
        )
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    seen_since_log, labelled_since_log = 0, 0
    log_time, log_step = time.perf_counter(), step
    last_loss, knn = float("nan"), {}
    collapse_warned = False
    stop = False
    first_step, speed_mark = step, None
    knn_every_steps = max(1, round(cfg.run.knn_every * steps_per_epoch))
    byol.train()
    try:
        while step < schedule.total_steps and not stop:
            epoch = step // steps_per_epoch
            start_batch = (step - epoch * steps_per_epoch) * accumulate
            batches = data.epoch(epoch, start_batch, pin_memory=device.type == "cuda")
            micro: list = []
            labels_of_step: list = []
            for batch in batches:
                # Augmentation draws: a function of (seed, rank, step, micro-batch); ranks differ.
                g = seeded_generator(cfg.run.seed, 53, info.rank, step, len(micro), device=device)
                if batch.images is not None:
                    views = augment(batch.images.to(device, non_blocking=True), g)
                else:
                    crops = tuple(c.to(device, non_blocking=True) for c in batch.crops)
                    views = augment(generator=g, crops=crops)
                views = tuple(v.contiguous(memory_format=memory_format) for v in views)
                micro.append(views)
                labels_of_step.append(batch.labels)
                if len(micro) < accumulate:
                    continue
                lr = schedule.lr(step, peak_lr)
                tau = tau_schedule(step, schedule.total_steps, cfg.optim.tau_base)
                result = train_step(model, byol, optimizer, micro, lr, tau, autocast)
                loss_sum += result.loss
                if classifier is not None and labels_of_step[-1] is not None:
                    y = labels_of_step[-1].to(device, non_blocking=True)
                    correct += classifier.step(result.output.representation_view1, y)
                    labelled_since_log += len(y)
                micro, labels_of_step = [], []
                step += 1
                seen_since_log += images_per_step
                if pbar is not None:
                    pbar.update(1)

                # -- logging (the only host syncs) --
                if step % cfg.run.log_every == 0 or step == schedule.total_steps:
                    mean_loss = (all_reduce_mean(loss_sum, info) / max(step - log_step, 1)).item()  # all ranks
                    if not math.isfinite(mean_loss):
                        last = ckpt_io.list_checkpoints(run_dir)
                        where = f"; the last good checkpoint is {last[-1]}" if last else ""
                        raise ByolError(f"loss became non-finite near step {step}{where}; lower --lr and resume")
                    now = time.perf_counter()
                    d = result.output.projection_view1.shape[1]
                    pstd = projection_std(result.output.projection_view1)
                    values = {
                        "epoch": step / steps_per_epoch,
                        "loss": mean_loss,
                        "lr": lr,
                        "tau": tau,
                        "images_per_sec": seen_since_log / max(now - log_time, 1e-9),
                        "projection_std": pstd,
                        "projection_std_ratio": pstd * math.sqrt(d),
                        "effective_rank": effective_rank(result.output.representation_view1),
                        "elapsed": elapsed_now(),
                    }
                    if labelled_since_log:
                        # Every rank sees as many labels per step: the mean count over ranks / ours.
                        values["online_top1"] = all_reduce_mean(correct.float(), info).item() / labelled_since_log
                    metrics.log(step, values)
                    if pbar is not None:
                        pbar.set_postfix(
                            refresh=False,
                            ep=f"{values['epoch']:.2f}", loss=f"{mean_loss:.3f}", lr=f"{lr:.2e}", tau=f"{tau:.4f}",
                            ips=f"{values['images_per_sec']:.0f}",
                        )  # fmt: skip
                    if values["projection_std_ratio"] < COLLAPSE_RATIO and not collapse_warned:
                        log.warning(
                            "step %d: the representation looks collapsed (projection std × √d = %.3f, healthy ≈ 1)",
                            step, values["projection_std_ratio"],
                        )  # fmt: skip
                        collapse_warned = True
                    last_loss = mean_loss
                    loss_sum.zero_()
                    correct.zero_()
                    seen_since_log, labelled_since_log, log_time, log_step = 0, 0, now, step

                # -- time budget: lay the schedules over the steps the budget allows --
                # Under torchrun every rank takes rank 0's decisions (clocks differ), at steps all
                # ranks agree on: each estimate, and each log step for the stop on time.
                if schedule.budget_seconds is not None:
                    if speed_mark is None and step >= first_step + 3:  # skip compilation and warm-up steps
                        speed_mark = (step, elapsed_now())
                    elif speed_mark is not None and (
                        (not schedule.estimated and step >= speed_mark[0] + 20) or step % steps_per_epoch == 0
                    ):  # first estimate after 20 timed steps, then again at every epoch end
                        _estimate_total(schedule, step, elapsed_now(), speed_mark, cfg, info, device)
                        if pbar is not None:
                            pbar.total = schedule.total_steps
                            pbar.refresh()
                    check = not info.distributed or step % cfg.run.log_every == 0
                    if check and from_rank0(int(elapsed_now() >= schedule.budget_seconds), info, device):
                        schedule.total_steps = step
                        stop = True

                end_of_epoch = step % steps_per_epoch == 0
                last_step = stop or step >= schedule.total_steps
                if monitor is not None and info.is_main and (step % knn_every_steps == 0 or last_step):
                    knn = monitor.evaluate(byol.online_encoder, device)
                    metrics.log(step, {"epoch": step / steps_per_epoch, **knn})
                    log.info("step %d: kNN top-1 %.4f", step, knn["knn_top1"])
                timed = cfg.run.checkpoint_every_minutes > 0 and (
                    time.perf_counter() - last_ckpt_time >= cfg.run.checkpoint_every_minutes * 60
                )
                if (end_of_epoch or timed or last_step) and info.is_main:
                    _save_checkpoint(run_dir, state_fn(step), step, cfg)
                    last_ckpt_time = time.perf_counter()
                if on_step is not None:
                    on_step(step)
                if last_step:
                    break
    finally:
        if pbar is not None:
            pbar.close()
        metrics.close()

    # ---- the encoder users keep ----------------------------------------------------------------
    seconds = elapsed_now()
    if info.is_main:
        meta = encoder_meta(cfg.model, cfg.data.image_size, cfg.augment.mean, cfg.augment.std, enc.feature_dim)
        save_encoder(byol.online_encoder, meta, run_dir)
        summary = {
            "steps": step,
            "epochs": step / steps_per_epoch,
            "images_seen": step * images_per_step,
            "seconds": seconds,
            "final_loss": last_loss,
            **knn,
        }
        summary_path.write_text(json.dumps(summary, indent=2) + "\n")
    return RunResult(run_dir, step, step / steps_per_epoch, step * images_per_step, seconds, last_loss, knn)


def _estimate_total(
    schedule: Schedule, step: int, elapsed: float, mark: tuple[int, float], cfg: Config, info: DistInfo, device
) -> None:
    per_step = (elapsed - mark[1]) / max(step - mark[0], 1)
    remaining = max(schedule.budget_seconds - elapsed, 0.0)
    schedule.total_steps = from_rank0(max(step + 1, step + int(remaining / per_step)), info, device)
    schedule.warmup_steps = _warmup_steps(cfg, schedule.steps_per_epoch, schedule.total_steps)
    schedule.estimated = True
    log.info("time budget: %.2f s per step, %d steps in all", per_step, schedule.total_steps)


def _checkpoint_state(
    byol, optimizer, classifier, step, schedule: Schedule, cfg: Config, elapsed: float
) -> dict[str, Any]:
    from byol import __version__

    state = {
        "model": ckpt_io.unwrap(byol).state_dict(),
        "optimizer": optimizer.state_dict(),
        "step": step,
        "epoch": step / schedule.steps_per_epoch,
        "total_steps": schedule.total_steps,
        "schedule": {
            "total_steps": schedule.total_steps,
            "warmup_steps": schedule.warmup_steps,
            "steps_per_epoch": schedule.steps_per_epoch,
            "estimated": schedule.estimated,
            "budget_seconds": schedule.budget_seconds,
        },
        "config": cfg.to_dict(),
        "rng": ckpt_io.rng_state(),
        "elapsed": elapsed,
        "byol_version": __version__,
    }
    if classifier is not None:
        state["classifier"] = classifier.state()
    return state


def _save_checkpoint(run_dir: Path, state: dict[str, Any], step: int, cfg: Config) -> None:
    if not all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point()):
        raise ByolError(f"weights became non-finite at step {step}; not overwriting good checkpoints. Lower --lr")
    ckpt_io.atomic_save(state, ckpt_io.checkpoint_path(run_dir, step))
    ckpt_io.prune(run_dir, cfg.run.keep_checkpoints)


def _truncate_metrics(run_dir: Path, step: int) -> None:
    """Drop metric lines written after the checkpoint we resume from (they will be written again)."""
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return
    keep = [line for line in path.read_text().splitlines() if line.strip() and json.loads(line)["step"] <= step]
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text("".join(line + "\n" for line in keep))
    os.replace(tmp, path)

"""Everything a pretraining run is made of, built once from its config: the run's parts.

Sections: run folder and config → device and seeds → data and augmentation → model, optimiser and
monitors. ``build_run`` returns one ``Run``; resuming (``byol.train.state``) and the loop
(``byol.train.loop``) receive it.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from byol.config import Config
from byol.config_io import load_yaml, save_yaml
from byol.data.augment import TwoViewAugment
from byol.data.source import TrainSource, build_train_source
from byol.dist import DistInfo, barrier, from_rank0
from byol.encoder_io import build_configured_encoder
from byol.errors import ByolError
from byol.files import atomic_write, remove_stale_temporaries
from byol.flags import option_name
from byol.method import Method, build_method
from byol.models.norms import mimic_batchnorm
from byol.optim import optimizer_for
from byol.train import checkpoint as ckpt_io
from byol.train.engine import augmentation_generator, make_views
from byol.train.memory import Probe, fit_micro_batch, passes_per_batch
from byol.train.monitor import OnlineClassifier

log = logging.getLogger(__name__)

CONFIG_FILE = "config.yaml"
LOCK_FILE = ".lock"

# A run's length: given anew on a run with checkpoints, it extends the run (``state.fit_length``, which
# checks it against the checkpoint's step and only then writes it into config.yaml and the history).
LENGTH_CHANGES = ("run.epochs", "run.time_budget")
# Values that may differ when a run is resumed; the saved config keeps the others.
RESUMABLE_CHANGES = (
    "run.device", "run.precision", "run.log_every", "data.workers", "data.path", "data.cache_dir", "data.eval_crop",
    "data.allow_changed", "data.cache_on_device", "data.knn_test", "optim.base_lr", "optim.compiled_step",
    "run.compile_mode",
    *LENGTH_CHANGES,
)  # fmt: skip
HISTORY_FILE = "config_history.jsonl"  # one line per resume that changed any of them


@dataclass
class Run:
    """The parts of one pretraining run."""

    cfg: Config
    run_dir: Path
    device: torch.device
    info: DistInfo
    data: TrainSource
    augment: TwoViewAugment
    method: Method  # the plain module: state dict, target update, the encoder users keep
    model: nn.Module  # what runs forward: ``method``, or its DDP / compiled wrapper
    optimizer: torch.optim.Optimizer
    peak_lr: float
    classifier: OnlineClassifier | None  # linear probe trained beside, to monitor (labelled data)
    memory_format: torch.memory_format
    steps_per_epoch: int
    precision: str  # fp32 or bf16, resolved from run.precision for the device
    passes_per_batch: int = 1  # forward passes per batch (optim.micro_batch): gradients accumulated over them

    @property
    def images_per_step(self) -> int:
        return self.cfg.optim.batch_size * self.cfg.optim.accumulate * self.info.world_size

    def autocast(self) -> contextlib.AbstractContextManager:
        return autocast_for(self.precision, self.device)


def resolve_precision(setting: str, device: torch.device) -> str:
    """``run.precision``: auto is bf16 autocast on CUDA and on CPUs with bf16 matrix units (Intel AMX),
    fp32 on other CPUs (bf16 matmuls are slower than fp32 there)."""
    if setting == "auto":
        return "bf16" if device.type == "cuda" or (device.type == "cpu" and cpu_has_bf16_units()) else "fp32"
    return setting


def cpu_has_bf16_units() -> bool:
    """Whether this CPU multiplies bf16 matrices in hardware (Intel AMX tiles), as PyTorch reports it."""
    probe = getattr(torch.cpu, "_is_amx_tile_supported", None)
    return bool(probe()) if probe is not None else False


def autocast_for(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast of the forward passes (the loss is computed in fp32), or nothing for fp32."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def build_run(cfg: Config, run_dir: Path, resume: bool, device: torch.device, info: DistInfo) -> Run:
    cfg = prepare_run_dir(run_dir, cfg, resume, info)
    device = _configure_device(cfg, device, info)
    data, steps_per_epoch = _build_data(cfg, info)
    data.keep_on_device(cfg.data.cache_on_device, device)
    data.keep_skip_log(run_dir / f"skipped-rank{info.rank}.txt")
    augment = cfg.augment.build(cfg.data.image_size, compile=_augment_compile(cfg.augment.compile, device))
    memory_format = torch.channels_last if cfg.run.channels_last else torch.contiguous_format
    first_views = lambda: _first_views(cfg, data, augment, device)  # noqa: E731
    method, model, optimizer, peak_lr = build_model(cfg, device, info, memory_format, first_views)
    classifier = None
    if cfg.run.online_classifier and data.labelled:
        classifier = OnlineClassifier(method.feature_dim, data.num_classes, device=device)
    precision = resolve_precision(cfg.run.precision, device)
    log.info("model: %s, %s, %s", cfg.model.backbone, precision, "channels_last" if cfg.run.channels_last else "NCHW")
    run = Run(
        cfg, run_dir, device, info, data, augment, method, model, optimizer, peak_lr, classifier,
        memory_format, steps_per_epoch, precision,
    )  # fmt: skip
    run.passes_per_batch = _passes_per_batch(run)
    return run


def _passes_per_batch(run: Run) -> int:
    """Forward passes per batch: ``optim.micro_batch``, or as many as fit (``byol.train.memory``)."""
    cfg, batch = run.cfg, run.cfg.optim.batch_size
    if cfg.optim.micro_batch != "auto":
        micro, how = min(int(cfg.optim.micro_batch), batch), "--micro-batch"
    else:
        eager = cfg.augment.build(cfg.data.image_size)
        views = lambda images: make_views_for_probe(eager, images, run)  # noqa: E731
        probe = Probe(run.method, views, cfg.data.image_size, run.device, run.autocast)
        micro, how = fit_micro_batch(batch, probe, run.device)
        micro = from_rank0(micro, run.info, run.device)  # every rank splits its batch alike
    passes = passes_per_batch(batch, micro)
    if passes > 1:
        log.warning(
            "micro-batch: the batch of %d images per process runs as %d forward passes of about %d (%s); their "
            "gradients are accumulated, and BatchNorm statistics are per pass, as in the paper's emulation of "
            "large batches",
            batch, passes, math.ceil(batch / passes), how,
        )  # fmt: skip
    else:
        log.info("micro-batch: the whole batch of %d in one forward pass (%s)", batch, how)
    return passes


def _first_views(cfg: Config, data: TrainSource, augment: TwoViewAugment, device: torch.device) -> torch.Tensor:
    """The first view of up to 256 images of the run's first batch (epoch 0, this rank's part), as
    step 0 draws it: what a data-dependent start (``model.encoder_init bn-mimic``) is computed on."""
    batch = next(iter(data.epoch(0)))
    batch = batch.split(math.ceil(len(batch.indices) / 256))[0]
    return make_views(augment, batch, device, augmentation_generator(cfg.run.seed, 0, 0, 0, device))[0]


def make_views_for_probe(augment: TwoViewAugment, images: torch.Tensor, run: Run):
    g = torch.Generator(device=run.device).manual_seed(0)
    return tuple(v.contiguous(memory_format=run.memory_format) for v in augment(images, g))


# ---- run folder and config ----------------------------------------------------------------------


def prepare_run_dir(run_dir: Path, cfg: Config, resume: bool, info: DistInfo) -> Config:
    """Create the run folder, or take up the run it holds: its saved config wins, and options that
    would change what is trained are refused. Temporary files left by a crash are removed."""
    config_path = run_dir / CONFIG_FILE
    if info.is_main:
        for folder in (run_dir, run_dir / ckpt_io.CHECKPOINT_DIR):
            if stale := remove_stale_temporaries(folder):
                log.warning("removed %d file(s) a crash left half-written: %s", len(stale), ", ".join(map(str, stale)))
    checkpoints = ckpt_io.list_checkpoints(run_dir)
    to_file = None  # what config.yaml gets, when not ``cfg``
    if not config_path.exists():
        if checkpoints:
            raise ByolError(f"{run_dir} holds checkpoints but no {CONFIG_FILE}; restore it, or choose another --out")
    elif checkpoints and not resume:
        raise ByolError(
            f"{run_dir} already holds a run (newest checkpoint {checkpoints[-1].name}); drop --no-resume to "
            "continue it, or choose another --out"
        )
    else:
        saved = load_yaml(config_path)
        changed = [c for c in _differences(saved.to_dict(), cfg.to_dict()) if c not in RESUMABLE_CHANGES]
        named = ", ".join(option_name(c) for c in changed[:3])  # as the user sets them: --epochs, --set ...
        if changed and checkpoints:
            raise ByolError(
                f"{run_dir} was started with a different config ({named}); "
                "use a new --out or the same options to resume"
            )
        if changed:
            raise ByolError(
                f"{config_path} belongs to a run with other options ({named}) that wrote no "
                f"checkpoint; choose another --out, or delete {config_path} to start this run there"
            )
        applied = {}
        for key in RESUMABLE_CHANGES:  # the new values apply, and are recorded
            section, name = key.split(".")
            old, new = getattr(getattr(saved, section), name), getattr(getattr(cfg, section), name)
            if old != new:
                applied[key] = [old, new]
            setattr(getattr(saved, section), name, new)
        to_file = saved
        if checkpoints and any(k in applied for k in LENGTH_CHANGES):  # written once fit_length accepts it
            to_file = copy.deepcopy(saved)
            for key in LENGTH_CHANGES:
                section, name = key.split(".")
                setattr(getattr(to_file, section), name, applied.pop(key, [getattr(getattr(saved, section), name)])[0])
        if applied and info.is_main:
            record_history(run_dir, applied)
        cfg = saved
    if info.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_yaml(to_file or cfg, config_path)
    return cfg


def record_history(run_dir: Path, applied: dict[str, list]) -> None:
    """One line in config_history.jsonl: the options a resume changed, from the newest checkpoint's step."""
    path = run_dir / HISTORY_FILE
    lines = path.read_text().splitlines() if path.exists() else []
    steps = [int(p.stem.split("-")[1]) for p in ckpt_io.list_checkpoints(run_dir)]
    lines.append(
        json.dumps({"time": time.strftime("%Y-%m-%d %H:%M:%S"), "from_step": max(steps, default=0), **applied})
    )
    with atomic_write(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    log.info("resumed with changed options: %s", ", ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in applied.items()))


def _differences(a: dict, b: dict, prefix: str = "") -> list[str]:
    out = []
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += _differences(va, vb, f"{prefix}{k}.")
        elif va != vb:
            out.append(f"{prefix}{k}")
    return out


# ---- device and seeds ---------------------------------------------------------------------------


def _configure_device(cfg: Config, device: torch.device, info: DistInfo) -> torch.device:
    if device.type == "cuda" and info.distributed:
        device = torch.device("cuda", info.local_rank)
    torch.manual_seed(cfg.run.seed)
    if cfg.run.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=device.type == "cuda")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = not cfg.run.deterministic
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return device


def _augment_compile(setting: str, device: torch.device) -> bool:
    if setting == "auto":
        return device.type == "cuda" or shutil.which("c++") is not None or shutil.which("g++") is not None
    return setting == "on"


def _sync_bn(setting: str, device: torch.device) -> bool:
    if setting == "on" and device.type != "cuda":
        raise ByolError("model.sync_bn=on needs CUDA (SyncBatchNorm runs on GPUs only); use auto or off on CPU")
    return setting == "on" or (setting == "auto" and device.type == "cuda")


# ---- data ---------------------------------------------------------------------------------------


def _build_data(cfg: Config, info: DistInfo) -> tuple[TrainSource, int]:
    if not info.is_main:
        barrier(info)  # rank 0 decodes the image cache once; the others then read it
    data = build_train_source(cfg, info.rank, info.world_size)
    if not data.random_access and cfg.run.knn_every > 0 and info.is_main:
        log.info("kNN monitor: off for tar shards (read in order); evaluate with byol eval knn on a folder")
    if info.is_main:
        barrier(info)
    accumulate = cfg.optim.accumulate
    steps_per_epoch = data.batches_per_epoch() // accumulate
    if steps_per_epoch < 1:
        raise ByolError(
            f"{cfg.data.path}: {len(data)} images make {data.batches_per_epoch()} batches, "
            f"fewer than --accumulate {accumulate}"
        )
    log.info(
        "data: %d images%s from %s, %d steps per epoch (batch %d × %d accumulated × %d processes)",
        len(data),
        f" in {data.num_classes} classes" if data.labelled else " (unlabelled)",
        cfg.data.path,
        steps_per_epoch,
        cfg.optim.batch_size,
        accumulate,
        info.world_size,
    )
    return data, steps_per_epoch


# ---- model and optimiser ------------------------------------------------------------------------


def build_model(
    cfg: Config,
    device: torch.device,
    info: DistInfo,
    memory_format: torch.memory_format,
    first_views: Callable[[], torch.Tensor] | None = None,
) -> tuple[Method, nn.Module, torch.optim.Optimizer, float]:
    """The method module, what runs it forward (DDP / compiled), its optimiser and peak lr.
    ``first_views`` gives the images of a data-dependent start (``model.encoder_init bn-mimic``);
    under DDP rank 0's start is every rank's (DDP broadcasts its weights when it wraps them)."""
    m = cfg.model
    enc = build_configured_encoder(m, cfg.data.image_size)
    if m.encoder_init == "bn-mimic":  # before the method copies the encoder into its target
        if first_views is None:
            raise ByolError(f"{option_name('model.encoder_init')} bn-mimic needs the run's first images")
        layers = mimic_batchnorm(enc.module.to(device), first_views())
        log.info("encoder start: %d GroupNorm layers set on the first batch to start as BatchNorm does", layers)
    method = build_method(m, enc.module, enc.feature_dim).to(device).to(memory_format=memory_format)
    peak_lr = cfg.optim.peak_lr(info.world_size)
    optimizer = optimizer_for(cfg.optim, method.trained_modules(), peak_lr)
    model: nn.Module = method
    sync_bn = _sync_bn(cfg.model.sync_bn, device)  # refused on a CPU even for one process
    if info.distributed:
        if sync_bn:
            method = torch.nn.SyncBatchNorm.convert_sync_batchnorm(method)
        model = nn.parallel.DistributedDataParallel(
            method, device_ids=[device.index] if device.type == "cuda" else None
        )
    if cfg.run.compile:
        model = torch.compile(model, mode=None if cfg.run.compile_mode == "default" else cfg.run.compile_mode)
    return method, model, optimizer, peak_lr

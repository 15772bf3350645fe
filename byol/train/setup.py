"""Everything a pretraining run is made of, built once from its config: the run's parts.

Sections: device and seeds → data and augmentation → model, optimiser and monitors; the run folder
and its config are ``byol.train.run_folder``'s. ``build_run`` returns one ``Run``; resuming
(``byol.train.state``) and the loop (``byol.train.loop``) receive it.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from byol import build
from byol.config import Config, option_name
from byol.data.augment import TwoViewAugment
from byol.data.source import LabelledImages, TrainSource, check_batch_size
from byol.device import DevicePolicy, configure_device
from byol.dist import DistInfo, barrier
from byol.errors import ByolError
from byol.method import Method
from byol.models.norms import mimic_batchnorm
from byol.run_files import RunFiles
from byol.train import checkpoint as ckpt_io
from byol.train.engine import augmentation_generator, make_views
from byol.train.memory import MemoryProbe, choose_passes
from byol.train.online_classifier import OnlineClassifier
from byol.train.precision_probe import measured_precision
from byol.train.run_folder import prepare_run_dir

log = logging.getLogger(__name__)

PRECISION_PROBE_IMAGES = 32  # images per pass of the precision probe (at most the batch): ResNet-18 w1, 32 px: 17 s


@dataclass(frozen=True)
class Run:
    """The parts of one pretraining run."""

    cfg: Config
    run_dir: Path
    policy: DevicePolicy  # the device, and how the run uses it (precision, memory order, ...)
    info: DistInfo
    data: TrainSource
    augment: TwoViewAugment
    method: Method  # the plain module: state dict, target update, the encoder users keep
    model: nn.Module  # what runs forward: ``method``, or its DDP / compiled wrapper
    optimizer: torch.optim.Optimizer
    peak_lr: float
    classifier: OnlineClassifier | None  # linear probe trained beside, to monitor (labelled data)
    steps_per_epoch: int
    passes_per_batch: int  # forward passes per batch (optim.micro_batch): gradients accumulated over them

    @property
    def images_per_step(self) -> int:
        return self.cfg.optim.batch_size * self.cfg.optim.accumulate * self.info.world_size

    @property
    def device(self) -> torch.device:
        return self.policy.device

    @property
    def precision(self) -> str:
        """fp32 or bf16, resolved from run.precision for the device."""
        return self.policy.precision

    @property
    def memory_format(self) -> torch.memory_format:
        return self.policy.memory_format

    def autocast(self) -> contextlib.AbstractContextManager:
        return self.policy.autocast()


def build_run(
    cfg: Config, run_dir: Path, resume: bool, device: torch.device, info: DistInfo, source: TrainSource | None = None
) -> Run:
    """The run's parts from its config; ``source``: batches of one's own instead of ``data.path``'s."""
    cfg = prepare_run_dir(run_dir, cfg, resume, info)
    device = configure_device(device, info, cfg.run.seed, cfg.run.deterministic)
    r = cfg.run
    policy = DevicePolicy.resolve(device, r.precision, r.channels_last, cfg.augment.compile, cfg.model.sync_bn)
    data, steps_per_epoch = _build_data(cfg, info, device, run_dir, source)
    augment = build.augmentation(cfg, compile=policy.compile_augment)
    eager = augment.eager()  # the memory probe's: a pass at its own size, not compiled
    first_views = lambda: _first_views(cfg, data, augment, device)  # noqa: E731
    method, model, optimizer, peak_lr = build_model(cfg, policy, info, first_views)
    micro = min(cfg.optim.batch_size, PRECISION_PROBE_IMAGES)
    probe_in = lambda p: MemoryProbe(method, eager, cfg.data.image_size, p).timed_pass(micro)  # noqa: E731
    planned = (r.epochs * steps_per_epoch, r.time_budget)
    saved = ckpt_io.saved_precision(run_dir) if resume else None
    policy, _ = measured_precision(policy, r.precision, probe_in, info, planned, saved)  # auto, CPU bf16 units
    classifier = None
    if cfg.run.online_classifier and data.labelled:
        classifier = OnlineClassifier(method.feature_dim, data.num_classes, device=device)
    layout = "channels_last" if r.channels_last else "NCHW"
    log.info("model: %s, %s, %s", cfg.model.backbone, policy.precision_reason, layout)
    probe = lambda: MemoryProbe(method, eager, cfg.data.image_size, policy)  # noqa: E731
    passes = choose_passes(cfg.optim.batch_size, cfg.optim.micro_batch, info, probe)  # probed for micro_batch auto
    parts = (data, augment, method, model, optimizer, peak_lr, classifier)
    return Run(cfg, run_dir, policy, info, *parts, steps_per_epoch, passes)


def _first_views(cfg: Config, data: TrainSource, augment: TwoViewAugment, device: torch.device) -> torch.Tensor:
    """The first view of up to 256 images of the run's first batch (epoch 0, this rank's part), as
    step 0 draws it: what a data-dependent start (``model.encoder_init bn-mimic``) is computed on."""
    batch = next(iter(data.epoch(0)))
    batch = batch.split(math.ceil(len(batch.indices) / 256))[0]
    return make_views(augment, batch, device, augmentation_generator(cfg.run.seed, 0, 0, 0, device))[0]


# ---- data ---------------------------------------------------------------------------------------


def _build_data(
    cfg: Config, info: DistInfo, device: torch.device, run_dir: Path, source: TrainSource | None
) -> tuple[TrainSource, int]:
    """The run's source (``source``, or the one ``data.path`` names) and its steps per epoch."""
    data = source
    if data is None:
        if not info.is_main:
            barrier(info)  # rank 0 decodes the image cache once; the others then read it
        data = build.train_source(cfg, info.rank, info.world_size, device, RunFiles(run_dir).skip_log(info.rank))
        if info.is_main:
            barrier(info)
    check_batch_size(data, cfg.optim.batch_size, cfg.data.path or "pretrain(source=...)")
    if not isinstance(data, LabelledImages) and cfg.run.knn_every > 0 and info.is_main:
        log.info("kNN monitor: off for a source without images by index (tar shards are read in order); "
                 "evaluate with byol eval knn on a folder")  # fmt: skip
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
    cfg: Config, policy: DevicePolicy, info: DistInfo, first_views: Callable[[], torch.Tensor] | None = None
) -> tuple[Method, nn.Module, torch.optim.Optimizer, float]:
    """The method module, what runs it forward (DDP / compiled), its optimiser and peak lr.
    ``first_views`` gives the images of a data-dependent start (``model.encoder_init bn-mimic``);
    under DDP rank 0's start is every rank's (DDP broadcasts its weights when it wraps them)."""
    m, device = cfg.model, policy.device
    enc = build.encoder(cfg)
    views = None
    if m.encoder_init == "bn-mimic":  # before the method copies the encoder into its target
        if first_views is None:
            raise ByolError(f"{option_name('model.encoder_init')} bn-mimic needs the run's first images")
        views = first_views()
        layers = mimic_batchnorm(enc.module.to(device), views)
        log.info("encoder start: %d normalisation layers set on the first batch to start as BatchNorm does", layers)
    method = build.method(cfg, enc.module, enc.feature_dim).to(device).to(memory_format=policy.memory_format)
    if views is not None and m.norm == "affine":  # the heads' affines from the encoder's features, then the target
        with torch.no_grad():
            features = method.online_encoder(views)
        layers = mimic_batchnorm(nn.Sequential(method.online_projector, method.predictor), features)
        method.update_target(0.0)
        log.info("heads start: %d affine layers set on the first batch to start as BatchNorm does", layers)
    peak_lr = build.peak_lr(cfg.optim, info.world_size)
    optimizer = build.optimizer(
        cfg.optim, method.trained_modules(), peak_lr, predictor=getattr(method, "predictor", None)
    )
    model: nn.Module = method
    if info.distributed:
        if policy.sync_bn:
            method = torch.nn.SyncBatchNorm.convert_sync_batchnorm(method)
        model = nn.parallel.DistributedDataParallel(
            method, device_ids=[device.index] if device.type == "cuda" else None
        )
    if cfg.run.compile:
        model = torch.compile(model, mode=None if cfg.run.compile_mode == "default" else cfg.run.compile_mode)
    return method, model, optimizer, peak_lr

"""From a ``Config`` to the objects a run trains: the one module that reads a ``Config`` to build.

Above it, ``byol pretrain``'s setup, the Lightning module and the benchmarks hand it a ``Config``; below
it (the data sources, the encoders, the methods, the optimisers, the augmentation, the encoder files)
every builder takes plain values, so none of them needs the schema to be used or tested
(``tests/test_structure.py`` holds both sides).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from byol.config.schema import Config, ModelConfig, OptimConfig
from byol.data.augment import TwoViewAugment
from byol.data.source import SourceRequest, TrainSource, build_train_source
from byol.encoder_io import encoder_meta as _encoder_meta
from byol.errors import ByolError
from byol.method.base import Heads, Method
from byol.method.registry import build_method
from byol.models.backbones import Encoder, build_encoder
from byol.optim import build_optimizer, param_groups
from byol.schedules import scaled_lr


def augmentation(cfg: Config, compile: bool = False) -> TwoViewAugment:
    """The two-view augmentation ``cfg.augment`` describes, for views of ``data.image_size`` pixels."""
    a = cfg.augment
    return TwoViewAugment(
        cfg.data.image_size, *a.views(), a.mean, a.std, a.interpolation, compile=compile, jitter=a.jitter
    )


def encoder(cfg: Config) -> Encoder:
    """The encoder ``cfg.model`` describes, randomly initialised (pretraining and its untrained baseline)."""
    m = cfg.model
    try:
        return build_encoder(
            m.backbone, m.width, cfg.data.image_size, m.small_images, m.encoder_norm, m.timm_args, m.group_channels
        )
    except ValueError as e:  # a backbone these options cannot build: the message names the option
        raise ByolError(str(e)) from None


def encoder_meta(cfg: Config, feature_dim: int) -> dict[str, Any]:
    """What rebuilds and evaluates a run's encoder (``encoder.json``): its model, image size,
    normalisation and evaluation view."""
    m, d, a = cfg.model, cfg.data, cfg.augment
    return _encoder_meta(
        m.backbone, d.image_size, a.mean, a.std, feature_dim, d.eval_crop, width=m.width,
        small_images=m.small_images, norm=m.encoder_norm, group_channels=m.group_channels, timm_args=m.timm_args,
    )  # fmt: skip


def heads(model: ModelConfig) -> Heads:
    """The heads ``model.*`` sets."""
    m = model
    return Heads(m.projector_hidden, m.projection_dim, m.predictor_hidden, m.norm, m.use_predictor,
                 m.projector_output_norm)  # fmt: skip


def method(cfg: Config, encoder: nn.Module, feature_dim: int) -> Method:
    """The method module ``model.method`` names, around ``encoder``, with its options from ``cfg.methods``."""
    name = cfg.model.method
    return build_method(name, heads(cfg.model), cfg.methods.get(name), encoder, feature_dim)


def peak_lr(optim: OptimConfig, world_size: int = 1) -> float:
    """The lr after warm-up: ``base_lr`` scaled by the effective batch / 256 (unless ``scale_lr`` is off)."""
    batch = optim.batch_size * optim.accumulate * world_size
    return scaled_lr(optim.base_lr, batch) if optim.scale_lr else optim.base_lr


def optimizer(
    optim: OptimConfig,
    modules: nn.Module | list[nn.Module],
    lr: float,
    fused: bool = True,
    predictor: nn.Module | None = None,
) -> torch.optim.Optimizer:
    """The optimiser ``optim`` describes over ``modules`` (the paper's parameter groups), at ``lr``
    (``fused``: as ``byol.optim.build_optimizer``); ``predictor``, the one of ``modules`` whose lr is
    ``optim.predictor_lr`` times the others' (groups of their own; the loop's ``set_lr`` keeps the ratio)."""
    o, modules = optim, [modules] if isinstance(modules, nn.Module) else list(modules)
    scales = None
    if o.predictor_lr != 1:
        if not any(m is predictor and any(True for _ in m.parameters()) for m in modules):
            raise ByolError(f"--set optim.predictor_lr={o.predictor_lr:g}: this run has no predictor to scale")
        scales = [o.predictor_lr if m is predictor else 1.0 for m in modules]
    groups = param_groups(modules, o.weight_decay, scales)
    for group in groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
    return build_optimizer(
        o.optimizer, groups, lr=lr, weight_decay=o.weight_decay,
        momentum=o.momentum, trust_coefficient=o.trust_coefficient, clip=o.clip_lr, compiled=o.compiled_step,
        fused=fused,
    )  # fmt: skip


def source_request(cfg: Config, rank: int = 0, world_size: int = 1) -> SourceRequest:
    """What ``data.path``'s source is built from, for this process's share of ``world_size``."""
    d = cfg.data
    return SourceRequest(
        d.path, d.image_size, cfg.optim.batch_size, cfg.augment.views(), seed=cfg.run.seed, rank=rank,
        world_size=world_size, cache=d.cache, cache_dir=d.cache_dir or None, cache_on_device=d.cache_on_device,
        workers=d.workers, eval_crop=d.eval_crop, samples_per_epoch=d.samples_per_epoch,
        shuffle_buffer=d.shuffle_buffer,
    )  # fmt: skip


def train_source(
    cfg: Config, rank: int = 0, world_size: int = 1, device: torch.device | None = None, skip_log: Path | None = None
) -> TrainSource:
    """The source ``data.path`` names (``byol.data.source.SOURCES``): ``device`` for a cache kept there,
    ``skip_log`` for samples that do not decode."""
    return build_train_source(source_request(cfg, rank, world_size), device, skip_log)

"""The command line's config flags, one table: ``byol pretrain`` (and ``ablate``) build their
arguments from it, read them back from it, and errors name a config key the way a user sets it.

Every other key is set with ``--set section.key=value``.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Flag:
    name: str  # "--epochs"
    key: str  # "run.epochs": the config section and key it sets
    type: type | None  # what argparse parses the value as; None for a switch
    help: str
    switch: Any = None  # a switch takes no value and sets the key to this

    @property
    def dest(self) -> str:
        return self.name.lstrip("-").replace("-", "_")


_S = Flag  # the table below is wide enough
FLAGS: tuple[Flag, ...] = (
    _S("--epochs", "run.epochs", float, "length of the run in epochs"),
    _S("--time-budget", "run.time_budget", float, "minutes of training instead of --epochs; schedules fit the budget"),
    _S("--batch-size", "optim.batch_size", int, "images per forward pass and process"),
    _S("--accumulate", "optim.accumulate", int, "batches per optimiser step (emulates a larger batch)"),
    _S("--micro-batch", "optim.micro_batch", str, "images per forward pass: auto (what fits in memory) or N"),
    _S("--lr", "optim.base_lr", float, "base learning rate per 256 images (LARS/SGD); AdamW: the rate itself"),
    _S("--weight-decay", "optim.weight_decay", float, "weight decay (biases and norms excluded)"),
    _S("--optimizer", "optim.optimizer", str, "lars, sgd or adamw"),
    _S("--warmup-epochs", "optim.warmup_epochs", float, "linear warmup before the cosine decay"),
    _S("--tau-base", "optim.tau_base", float, "initial target decay rate (rises to 1); lower it for short runs"),
    _S("--backbone", "model.backbone", str, "encoder: resnet18, resnet34, resnet50, convnet, or timm:<name>"),
    _S("--method", "model.method", str, "byol, or simclr (the contrastive baseline: same encoder, heads, views)"),
    _S("--temperature", "model.temperature", float, "simclr: NT-Xent temperature"),
    _S("--simclr-recipe", "model.simclr_recipe", str, "simclr: byol (BYOL's heads and views) or paper (SimCLR's own)"),
    _S("--head-norm", "model.norm", str, "norm in projector and predictor: batchnorm, layernorm, groupnorm, none"),
    _S("--encoder-norm", "model.encoder_norm", str, "norm in the encoder: batchnorm or groupnorm-ws"),
    _S("--encoder-init", "model.encoder_init", str, "groupnorm-ws: default, or bn-mimic (set on the first batch)"),
    _S("--width", "model.width", float, "channel multiplier of the backbone (e.g. 0.25 on a CPU)"),
    _S("--image-size", "data.image_size", int, "side of the training views in pixels"),
    _S("--workers", "data.workers", int, "data loader workers for streamed images"),
    _S("--cache-dir", "data.cache_dir", str, "where decoded small images are cached"),
    _S("--seed", "run.seed", int, "seed of initialisation, data order and augmentations"),
    _S("--device", "run.device", str, "auto, cpu, cuda or cuda:N"),
    _S("--precision", "run.precision", str, "auto (bf16 autocast on CUDA and AMX CPUs, else fp32), fp32 or bf16"),
    _S("--log-every", "run.log_every", int, "steps between metrics lines"),
    _S("--knn-every", "run.knn_every", float, "epochs between kNN monitor runs when labels exist (0: off)"),
    _S("--knn-test", "data.knn_test", str, "labelled test folder: kNN monitor queries, all train images its bank"),
    _S("--checkpoint-every", "run.checkpoint_every_minutes", float, "minutes between checkpoints inside an epoch"),
    _S("--compile", "run.compile", None, "torch.compile the model (CUDA)", switch=True),
    _S("--deterministic", "run.deterministic", None, "deterministic kernels (exact resume)", switch=True),
    _S("--no-predictor", "model.use_predictor", None, "ablation: no predictor (BYOL collapses)", switch=False),
    _S("--no-color", "augment.color", None, "ablation: no colour jitter, no grayscale", switch=False),
)
_BY_KEY = {f.key: f.name for f in FLAGS}


def option_name(key: str) -> str:
    """How a user sets ``section.key``: its flag, or ``--set section.key``."""
    return _BY_KEY.get(key, f"--set {key}")


def add_flags(parser: argparse.ArgumentParser) -> None:
    for f in FLAGS:
        if f.switch is None:
            parser.add_argument(f.name, type=f.type, default=None, help=f.help)
        else:
            parser.add_argument(f.name, action="store_true", default=None, help=f.help)


def flag_values(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """The config values the flags in ``args`` set, as ``{section: {key: value}}``."""
    out: dict[str, dict[str, Any]] = {}
    for f in FLAGS:
        given = getattr(args, f.dest)
        if given is None:
            continue
        section, key = f.key.split(".")
        out.setdefault(section, {})[key] = given if f.switch is None else f.switch
    return out

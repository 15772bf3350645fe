"""``byol pretrain DATA --out RUN_DIR``: BYOL pretraining with presets and flag overrides."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from byol.cli.common import nested, parse_assignment, pick_preset
from byol.config import PRESETS, merge, resolve
from byol.errors import ByolError
from byol.train.checkpoint import list_checkpoints

# flag -> (config section, key, type, help)
FLAGS = {
    "--epochs": ("run", "epochs", float, "length of the run in epochs"),
    "--time-budget": ("run", "time_budget", float, "minutes of training instead of --epochs; schedules fit the budget"),
    "--batch-size": ("optim", "batch_size", int, "images per forward pass and process"),
    "--accumulate": ("optim", "accumulate", int, "micro-batches per optimiser step (emulates a larger batch)"),
    "--lr": ("optim", "base_lr", float, "base learning rate per 256 images (LARS/SGD); AdamW: the rate itself"),
    "--weight-decay": ("optim", "weight_decay", float, "weight decay (biases and norms excluded)"),
    "--optimizer": ("optim", "optimizer", str, "lars, sgd or adamw"),
    "--warmup-epochs": ("optim", "warmup_epochs", float, "linear warmup before the cosine decay"),
    "--tau-base": ("optim", "tau_base", float, "initial target decay rate (rises to 1); lower it for short runs"),
    "--backbone": ("model", "backbone", str, "encoder: resnet18, resnet34, resnet50, convnet"),
    "--width": ("model", "width", float, "channel multiplier of the backbone (e.g. 0.25 on a CPU)"),
    "--image-size": ("data", "image_size", int, "side of the training views in pixels"),
    "--workers": ("data", "workers", int, "data loader workers for streamed images"),
    "--cache-dir": ("data", "cache_dir", str, "where decoded small images are cached"),
    "--seed": ("run", "seed", int, "seed of initialisation, data order and augmentations"),
    "--device": ("run", "device", str, "auto, cpu, cuda or cuda:N"),
    "--precision": ("run", "precision", str, "auto (bf16 autocast on CUDA, fp32 on a CPU), fp32 or bf16"),
    "--log-every": ("run", "log_every", int, "steps between metrics lines"),
    "--knn-every": ("run", "knn_every", float, "epochs between kNN monitor runs when labels exist (0: off)"),
    "--checkpoint-every": ("run", "checkpoint_every_minutes", float, "minutes between checkpoints inside an epoch"),
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "data",
        help="folder of images (ImageFolder-style <class>/*.jpg, or unlabelled), or cifar10, cifar100, stl10[:SPLIT] "
        "from torchvision's files under $BYOL_DATASETS",
    )
    p.add_argument("--out", required=True, help="run folder: config, metrics, checkpoints, encoder")
    p.add_argument(
        "--preset",
        default="auto",
        help=f"{', '.join(PRESETS)} or a YAML file; auto: cifar10 for images of at most 64 px, else imagenet",
    )
    for flag, (_, _, typ, help_text) in FLAGS.items():
        p.add_argument(flag, type=typ, default=None, help=help_text)
    p.add_argument("--compile", action="store_true", default=None, help="torch.compile the model (CUDA)")
    p.add_argument("--deterministic", action="store_true", default=None, help="deterministic kernels (exact resume)")
    p.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="any config value, e.g. model.norm=none"
    )
    resume = p.add_mutually_exclusive_group()
    resume.add_argument("--resume", action="store_true", help="require a checkpoint in --out and continue it")
    resume.add_argument("--no-resume", action="store_true", help="refuse to continue an existing run in --out")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def overrides_from_args(args: argparse.Namespace) -> dict:
    out: dict = {"data": {"path": args.data}}
    for flag, (section, key, _, _) in FLAGS.items():
        value = getattr(args, flag.lstrip("-").replace("-", "_"))
        if value is not None:
            out = merge(out, {section: {key: value}})
    if args.epochs is not None and args.time_budget is None:
        out = merge(out, {"run": {"time_budget": None}})  # --epochs replaces a preset's time budget
    if args.compile:
        out = merge(out, {"run": {"compile": True}})
    if args.deterministic:
        out = merge(out, {"run": {"deterministic": True}})
    for item in args.set:
        path, value = parse_assignment(item)
        out = merge(out, nested(path, value))
    return out


def run(args: argparse.Namespace) -> int:
    from byol.train.pretrain import pretrain

    out = Path(args.out)
    if args.resume and not list_checkpoints(out):
        raise ByolError(f"--resume: no checkpoint in {out / 'checkpoints'}")
    cfg = resolve(pick_preset(args.preset, args.data), overrides_from_args(args))
    result = pretrain(cfg, out, resume=not args.no_resume, progress=not args.no_progress)
    summary = {"run": str(result.run_dir), "steps": result.steps, "epochs": round(result.epochs, 3)}
    summary.update({"images_seen": result.images_seen, "minutes": round(result.seconds / 60, 2)})
    summary.update({"final_loss": result.final_loss, **result.knn})
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps(summary))
    return 0

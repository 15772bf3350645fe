"""``byol pretrain DATA --out RUN_DIR``: BYOL pretraining with presets and flag overrides."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from byol.cli.common import nested, parse_assignment, pick_preset
from byol.config.docs import option_help
from byol.config.flags import add_flags, flag_values
from byol.config.io import merge
from byol.config.presets import PRESETS, resolve
from byol.errors import ByolError
from byol.run_files import RunFiles
from byol.train.checkpoint import list_checkpoints


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config_arguments(p, out_help="run folder: config, metrics, checkpoints, encoder")
    resume = p.add_mutually_exclusive_group()
    resume.add_argument("--resume", action="store_true", help="require a checkpoint in --out and continue it")
    resume.add_argument("--no-resume", action="store_true", help="refuse to continue an existing run in --out")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_config_arguments(p: argparse.ArgumentParser, out_help: str) -> None:
    """DATA, --out, --preset and every config flag: what ``overrides_from_args`` reads."""

    p.add_argument("data", help=option_help("data.path").replace("%", "%%"))  # the schema's one text
    p.add_argument("--out", required=True, help=out_help)
    p.add_argument(
        "--preset",
        default="auto",
        help=f"{', '.join(PRESETS)} or a YAML file; auto: cifar10 for images of at most 64 px, else imagenet",
    )
    add_flags(p, option_help)
    p.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="any config value, e.g. model.norm=none"
    )


def overrides_from_args(args: argparse.Namespace) -> dict:
    out = merge({"data": {"path": args.data}}, flag_values(args))
    if args.epochs is not None and args.time_budget is None:
        out = merge(out, {"run": {"time_budget": None}})  # --epochs replaces a preset's time budget
    for item in args.set:
        path, value = parse_assignment(item)
        out = merge(out, nested(path, value))
    return out


def run(args: argparse.Namespace) -> int:
    from byol.train.pretrain import pretrain

    out = Path(args.out)
    if args.resume and not list_checkpoints(out):
        raise ByolError(f"--resume: no checkpoint in {RunFiles(out).checkpoints}")
    cfg = resolve(pick_preset(args.preset, args.data), overrides_from_args(args))
    result = pretrain(cfg, out, resume=not args.no_resume, progress=not args.no_progress)
    summary = {"run": str(result.run_dir), "steps": result.steps, "epochs": round(result.epochs, 3)}
    summary.update({"images_seen": result.images_seen, "minutes": round(result.seconds / 60, 2)})
    summary.update({"compile_seconds": round(result.compile_seconds, 1), "images_per_sec": result.images_per_sec})
    summary.update({"final_loss": result.final_loss, "resumed_at": result.resumed_at, **result.knn})
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps(summary))
    return 0

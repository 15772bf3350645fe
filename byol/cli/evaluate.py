"""``byol eval {knn,linear,finetune} RUN_DIR --train DIR --test DIR``: evaluate a pretrained encoder.

Every protocol prints a table, or one JSON object with ``--json``: a row per encoder, with its
preprocessing, feature size and the seconds it took. ``--baseline`` adds the same backbone untrained
and untrained with its BatchNorm statistics adapted to ``--train`` (what BatchNorm alone gains, no
training); ``--against ENC`` (repeatable) adds an off-the-shelf encoder (``torchvision:<name>``,
``timm:<name>``, from the local caches) or another run, each through its own preprocessing: was
pretraining on these images worth it?
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

from byol.cli.common import IMAGES, add_device_argument, add_workers_argument
from byol.constants import (
    FINETUNE_BATCH_SIZE,
    FINETUNE_GRID,
    FINETUNE_MIN_STEPS,
    KNN_K,
    KNN_TEMPERATURE,
    LINEAR_BATCH_SIZE,
    LINEAR_EPOCHS,
    LINEAR_LRS,
)
from byol.errors import ByolError

log = logging.getLogger(__name__)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help="run folder, or an encoder file (.safetensors / .pt)")
    p.add_argument("--train", required=True, help=f"labelled images to fit on: {IMAGES}")
    p.add_argument("--test", required=True, help=f"labelled images to report on: {IMAGES}")
    p.add_argument(
        "--baseline",
        action="store_true",
        help="also score the same backbone untrained, and untrained with its BatchNorm statistics adapted to "
        "--train's images (JSON: baseline_*, bn_adapted_*)",
    )
    p.add_argument(
        "--against",
        action="append",
        default=[],
        metavar="ENC",
        help="also score this encoder the same way, through its own preprocessing (repeatable): "
        "torchvision:<name> (ImageNet weights from the torch hub cache), timm:<name> (pretrained, from the "
        "Hugging Face cache), or a run folder, Hub folder or hf-hub: name",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_workers_argument(p)
    p.add_argument("--seed", type=int, default=0)
    add_device_argument(p)


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="protocol", metavar="PROTOCOL", required=True)
    from byol.config.docs import option_help  # the schema's texts: --help and the reference say the same

    knn = sub.add_parser(
        "knn", help=f"weighted kNN (cosine, k={KNN_K}, T={KNN_TEMPERATURE:g}) from train features to test features"
    )
    _common(knn)
    knn.add_argument("--k", type=int, default=KNN_K, help=option_help("run.knn_k"))
    knn.add_argument("--temperature", type=float, default=KNN_TEMPERATURE, help=option_help("run.knn_temperature"))

    lin = sub.add_parser("linear", help="linear evaluation on the frozen encoder")
    _common(lin)
    lin.add_argument(
        "--augment",
        action="store_true",
        help="the paper's protocol (crop+flip, SGD Nesterov, lr picked on held-out train) instead of "
        "the fast one (features once, L-BFGS logistic regression)",
    )
    lin.add_argument("--epochs", type=int, default=LINEAR_EPOCHS, help="--augment: epochs per training (the paper's)")
    lin.add_argument("--batch-size", type=int, default=LINEAR_BATCH_SIZE, help="--augment: batch size (the paper's)")
    lin.add_argument("--lrs", type=float, nargs="+", default=list(LINEAR_LRS), help="--augment: lr grid (the paper's)")

    ft = sub.add_parser("finetune", help="semi-supervised: fine-tune on a class-balanced fraction of the labels")
    _common(ft)
    ft.add_argument(
        "--label-fraction", type=float, required=True,
        help="0.01 or 0.1 in the paper; 1.0 leaves nothing to choose the head start and lr on: give --lr",
    )  # fmt: skip
    ft.add_argument("--epochs", type=int, default=30, help="at least (more when --min-steps asks for them)")
    ft.add_argument("--min-steps", type=int, default=FINETUNE_MIN_STEPS, help="fewest optimiser steps")
    rates = ft.add_mutually_exclusive_group()
    rates.add_argument(
        "--lrs", type=float, nargs="+",
        help="learning rates tried with --head-start's head (default: the grid of byol.constants.FINETUNE_GRID, "
        "head at zero or as the linear probe), the best on held-out labelled train images",
    )  # fmt: skip
    rates.add_argument("--lr", type=float, help="one learning rate, no held-out choice (as --lrs LR)")
    ft.add_argument("--head-start", choices=("zeros", "probe"), help="the head's start with --lrs or --lr (zeros)")
    ft.add_argument("--batch-size", type=int, default=FINETUNE_BATCH_SIZE)


def _evaluate(args: argparse.Namespace, ev) -> dict[str, Any]:
    from byol.eval import protocols
    from byol.eval.runner import knn_evaluate

    if args.protocol == "knn":
        return knn_evaluate(ev, args.train, args.test, args.k, args.temperature)
    if args.protocol == "linear" and not args.augment:
        return protocols.linear_fast(ev, args.train, args.test)
    if args.protocol == "linear":
        return protocols.linear_augmented(ev, args.train, args.test, args.epochs, tuple(args.lrs), args.batch_size)
    lrs = [args.lr] if args.lr is not None else args.lrs
    grid = FINETUNE_GRID if lrs is None else tuple((args.head_start or "zeros", lr) for lr in lrs)
    return protocols.finetune(
        ev, args.train, args.test, args.label_fraction, args.epochs, grid, args.batch_size, args.min_steps
    )


def _validate(args: argparse.Namespace) -> None:
    if args.protocol == "knn" and (args.k < 1 or args.temperature <= 0):
        raise ByolError("--k must be >= 1 and --temperature > 0")
    if getattr(args, "epochs", 1) < 1:
        raise ByolError(f"--epochs must be at least 1, got {args.epochs}")
    if getattr(args, "batch_size", 2) < 2:
        raise ByolError(f"--batch-size must be at least 2, got {args.batch_size}")
    if args.protocol == "finetune" and not 0 < args.label_fraction <= 1:
        raise ByolError(f"--label-fraction must be in (0, 1], got {args.label_fraction}")
    if args.protocol == "finetune" and args.head_start and args.lr is None and args.lrs is None:
        raise ByolError("--head-start chooses the head of --lrs or --lr; without them the grid tries both starts")


def run(args: argparse.Namespace) -> int:
    from byol.device import resolve_device
    from byol.eval.runner import EncoderEval, with_baselines
    from byol.hub import eval_record

    _validate(args)
    device = resolve_device(args.device)
    options = dict(workers=args.workers, seed=args.seed, progress=not args.json)
    ev = EncoderEval.load(args.run, device, **options)
    others = {spec: EncoderEval.load(spec, device, **options) for spec in args.against}  # bad names fail first
    protocol = args.protocol + (" (augmented)" if getattr(args, "augment", False) else "")
    result: dict[str, Any] = {"protocol": protocol, "run": args.run, "train": args.train, "test": args.test}
    result["backbone"] = ev.meta["backbone"]

    def evaluate(e: EncoderEval) -> dict[str, Any]:
        start = time.perf_counter()
        return {**_evaluate(args, e), "seconds": time.perf_counter() - start}

    scores = with_baselines(ev, args.train, evaluate) if args.baseline else {"trained": evaluate(ev)}
    for name, values in scores.items():
        prefix = {"trained": "", "untrained": "baseline_", "bn-adapted": "bn_adapted_"}[name]
        result.update({f"{prefix}{k}": v for k, v in values.items() if k != "seconds"})
    metas = {name: ev.meta for name in scores}
    for spec, other in others.items():
        scores[spec], metas[spec] = evaluate(other), other.meta
    result["encoders"] = [_row(name, scores[name], metas[name]) for name in scores]
    record = eval_record(Path(args.run), args.protocol + ("-augmented" if "augmented" in protocol else ""),
                         result, getattr(args, "argv", []))  # fmt: skip
    if args.json:
        print(json.dumps(result))
    else:
        _print_table(args, protocol, ev, result["encoders"])
    if record is not None and not args.json:
        log.info("kept in %s (byol export --hub puts it in the model card)", record)
    return 0


def _row(name: str, values: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    """An encoder's row of the comparison: its scores, seconds, feature size and preprocessing."""
    keep = ("image_size", "eval_crop", "mean", "std")
    return {
        "encoder": name, "backbone": meta["backbone"], "top1": values["top1"], "top5": values["top5"],
        "feature_dim": meta["feature_dim"], "seconds": round(values["seconds"], 2),
        "preprocessing": {k: meta[k] for k in keep},
    }  # fmt: skip


def _print_table(args: argparse.Namespace, protocol: str, ev, rows: list[dict[str, Any]]) -> None:
    from byol.eval.pretrained import preprocessing

    print(f"{protocol} evaluation of {ev.meta['backbone']} from {args.run}: train {args.train}, test {args.test}")
    width = max(12, *(len(r["encoder"]) + 2 for r in rows))
    print(f"{'encoder':<{width}}{'top-1':>8}{'top-5':>8}{'dim':>6}{'seconds':>9}  preprocessing")
    for r in rows:
        print(
            f"{r['encoder']:<{width}}{r['top1']:>8.2%}{r['top5']:>8.2%}{r['feature_dim']:>6}{r['seconds']:>9.1f}  "
            f"{preprocessing(r['preprocessing'])}"
        )
    if args.baseline:
        print(f"bn-adapted: untrained, BatchNorm statistics re-estimated on {args.train} (no training)")
    if len(rows) > 1:
        print(
            "each encoder sees byol's evaluation view (bicubic resize, centre crop) at its own size, crop, mean and std"
        )

"""``byol eval {knn,linear,finetune} RUN_DIR --train DIR --test DIR``: evaluate a pretrained encoder.

Every protocol prints a table, or one JSON object with ``--json``; ``--baseline`` adds the same
backbone untrained and untrained with its BatchNorm statistics adapted to ``--train`` (what BatchNorm
alone gains, no training), scored the same way.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

from byol.cli.common import add_device_argument, add_workers_argument
from byol.errors import ByolError

log = logging.getLogger(__name__)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help="run folder, or an encoder file (.safetensors / .pt)")
    p.add_argument("--train", required=True, help="labelled folder (<class>/*.jpg) to fit on")
    p.add_argument("--test", required=True, help="labelled folder to report on")
    p.add_argument(
        "--baseline",
        action="store_true",
        help="also score the same backbone untrained, and untrained with its BatchNorm statistics adapted to "
        "--train's images (JSON: baseline_*, bn_adapted_*)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_workers_argument(p)
    p.add_argument("--seed", type=int, default=0)
    add_device_argument(p)


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="protocol", metavar="PROTOCOL", required=True)
    knn = sub.add_parser("knn", help="weighted kNN (cosine, k=200, T=0.1) from train features to test features")
    _common(knn)
    knn.add_argument("--k", type=int, default=200, help="neighbours that vote")
    knn.add_argument("--temperature", type=float, default=0.1, help="votes weigh exp(similarity / T)")

    lin = sub.add_parser("linear", help="linear evaluation on the frozen encoder")
    _common(lin)
    lin.add_argument(
        "--augment",
        action="store_true",
        help="the paper's protocol (crop+flip, SGD Nesterov, lr picked on held-out train) instead of "
        "the fast one (features once, L-BFGS logistic regression)",
    )
    lin.add_argument("--epochs", type=int, default=80, help="--augment: epochs per training (80 in the paper)")
    lin.add_argument("--batch-size", type=int, default=1024, help="--augment: batch size (1024 in the paper)")
    lin.add_argument("--lrs", type=float, nargs="+", default=[0.4, 0.3, 0.2, 0.1, 0.05], help="--augment: lr grid")

    ft = sub.add_parser("finetune", help="semi-supervised: fine-tune on a class-balanced fraction of the labels")
    _common(ft)
    ft.add_argument("--label-fraction", type=float, required=True, help="0.01, 0.1 or 1.0 in the paper")
    ft.add_argument("--epochs", type=int, default=30)
    ft.add_argument("--lr", type=float, default=0.05)
    ft.add_argument("--batch-size", type=int, default=256)


def _evaluate(args: argparse.Namespace, ev) -> dict[str, Any]:
    from byol.eval import protocols
    from byol.eval.runner import knn_evaluate

    if args.protocol == "knn":
        return knn_evaluate(ev, args.train, args.test, args.k, args.temperature)
    if args.protocol == "linear" and not args.augment:
        return protocols.linear_fast(ev, args.train, args.test)
    if args.protocol == "linear":
        return protocols.linear_augmented(ev, args.train, args.test, args.epochs, tuple(args.lrs), args.batch_size)
    return protocols.finetune(ev, args.train, args.test, args.label_fraction, args.epochs, args.lr, args.batch_size)


def _validate(args: argparse.Namespace) -> None:
    if args.protocol == "knn" and (args.k < 1 or args.temperature <= 0):
        raise ByolError("--k must be >= 1 and --temperature > 0")
    if getattr(args, "epochs", 1) < 1:
        raise ByolError(f"--epochs must be at least 1, got {args.epochs}")
    if getattr(args, "batch_size", 2) < 2:
        raise ByolError(f"--batch-size must be at least 2, got {args.batch_size}")
    if args.protocol == "finetune" and not 0 < args.label_fraction <= 1:
        raise ByolError(f"--label-fraction must be in (0, 1], got {args.label_fraction}")


def run(args: argparse.Namespace) -> int:
    from byol.dist import resolve_device
    from byol.eval.runner import EncoderEval, with_baselines
    from byol.hub import eval_record

    _validate(args)
    device = resolve_device(args.device)
    ev = EncoderEval.load(args.run, device, workers=args.workers, seed=args.seed, progress=not args.json)
    protocol = args.protocol + (" (augmented)" if getattr(args, "augment", False) else "")
    result: dict[str, Any] = {"protocol": protocol, "run": args.run, "train": args.train, "test": args.test}
    result["backbone"] = ev.meta["backbone"]
    evaluate = lambda e: _evaluate(args, e)  # noqa: E731
    scores = with_baselines(ev, args.train, evaluate) if args.baseline else {"trained": evaluate(ev)}
    for name, values in scores.items():
        prefix = {"trained": "", "untrained": "baseline_", "bn-adapted": "bn_adapted_"}[name]
        result.update({f"{prefix}{k}": v for k, v in values.items()})
    record = eval_record(Path(args.run), args.protocol + ("-augmented" if "augmented" in protocol else ""),
                         result, getattr(args, "argv", []))  # fmt: skip
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{protocol} evaluation of {ev.meta['backbone']} from {args.run}: train {args.train}, test {args.test}")
    print(f"{'encoder':<12}{'top-1':>8}{'top-5':>8}")
    for name, values in scores.items():
        print(f"{name:<12}{values['top1']:>8.2%}{values['top5']:>8.2%}")
    if args.baseline:
        print(f"bn-adapted: untrained, BatchNorm statistics re-estimated on {args.train} (no training)")
    if record is not None:
        log.info("kept in %s (byol export --hub puts it in the model card)", record)
    return 0

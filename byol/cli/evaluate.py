"""``byol eval knn RUN_DIR --train DIR --test DIR``: evaluate a pretrained encoder."""

from __future__ import annotations

import argparse
import json

from byol.cli.common import add_device_argument
from byol.encoder_io import load_encoder
from byol.errors import ByolError


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="protocol", metavar="PROTOCOL", required=True)
    knn = sub.add_parser("knn", help="weighted kNN (cosine, k=200, T=0.1) from train features to test features")
    knn.add_argument("run", help="run folder (or encoder.safetensors)")
    knn.add_argument("--train", required=True, help="labelled folder: the kNN memory bank")
    knn.add_argument("--test", required=True, help="labelled folder: the queries")
    knn.add_argument("--k", type=int, default=200, help="neighbours that vote")
    knn.add_argument("--temperature", type=float, default=0.1, help="votes weigh exp(similarity / T)")
    knn.add_argument("--baseline", action="store_true", help="also score the same backbone untrained")
    knn.add_argument("--json", action="store_true", help="print one JSON object")
    knn.add_argument("--workers", type=int, default=4)
    add_device_argument(knn)


def _device(name: str):
    from byol.train.pretrain import resolve_device

    return resolve_device(name)


def run(args: argparse.Namespace) -> int:
    from byol.eval.runner import knn_evaluate, untrained_like

    if args.k < 1 or args.temperature <= 0:
        raise ByolError("--k must be >= 1 and --temperature > 0")
    device = _device(args.device)
    encoder, meta = load_encoder(args.run, device)
    common = dict(k=args.k, temperature=args.temperature, device=device, workers=args.workers, progress=not args.json)
    result = {"protocol": "knn", "run": args.run, "train": args.train, "test": args.test, "k": args.k}
    result["temperature"] = args.temperature
    trained = knn_evaluate(encoder, meta, args.train, args.test, **common)
    result.update({"top1": trained["top1"], "top5": trained["top5"]})
    if args.baseline:
        base = knn_evaluate(untrained_like(meta), meta, args.train, args.test, **common)
        result.update({"baseline_top1": base["top1"], "baseline_top5": base["top5"]})
    if args.json:
        print(json.dumps(result))
    else:
        print(f"kNN (k={args.k}, T={args.temperature}) {meta['backbone']} from {args.run}")
        print(f"{'encoder':<12}{'top-1':>8}{'top-5':>8}")
        print(f"{'trained':<12}{trained['top1']:>8.2%}{trained['top5']:>8.2%}")
        if args.baseline:
            print(f"{'untrained':<12}{result['baseline_top1']:>8.2%}{result['baseline_top5']:>8.2%}")
    return 0

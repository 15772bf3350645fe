"""``byol shard DATA --out DIR``: a folder of images as WebDataset tar shards for ``byol pretrain``."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", help="image folder (ImageFolder-style: its classes become each sample's cls)")
    p.add_argument("--out", required=True, help="folder for shard-000000.tar ... and shards.json")
    p.add_argument("--shard-size", type=int, default=1000, help="images per shard (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="the shuffle of images across shards")


def run(args: argparse.Namespace) -> int:
    from byol.data.shards import write_shards
    from byol.errors import ByolError

    if args.shard_size < 1:
        raise ByolError(f"--shard-size must be at least 1, got {args.shard_size}")
    info = write_shards(args.data, args.out, args.shard_size, args.seed)
    print(f"wrote {info['samples']} images in {info['shards']} shards: byol pretrain '{info['pattern']}' ...")
    return 0

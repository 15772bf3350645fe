"""``byol push RUN_DIR OWNER/NAME``: the encoder's Hub folder uploaded to a Hugging Face model repository."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help="run folder, an encoder file, or a folder byol export --hub wrote")
    p.add_argument("repo_id", help="the Hub repository, OWNER/NAME (created if missing)")
    p.add_argument("--private", action="store_true", help="create the repository private")


def run(args: argparse.Namespace) -> int:
    from byol.hub import push

    url = push(args.run, args.repo_id, private=args.private)
    print(f"pushed {args.run} to {args.repo_id}: {url}; load it with byol.load_encoder('hf-hub:{args.repo_id}')")
    return 0

"""``byol report RUN_DIR``: RUN_DIR/report.html (self-contained) and RUN_DIR/report/*.png."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help="run folder")
    p.add_argument("--test", default=None, help="labelled folder for the embedding map (default: DATA/../test)")
    p.add_argument("--max-points", type=int, default=2000, help="images in the embedding map")


def run(args: argparse.Namespace) -> int:
    from byol.run_report import build_report

    out = build_report(args.run, args.test, args.max_points)
    print(f"wrote {out}")
    return 0

"""``byol ablate DATA --suite paper --minutes M --out DIR [--test TEST]``: the paper's ablations on your data."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from byol.cli.common import pick_preset
from byol.cli.pretrain import add_config_arguments, overrides_from_args
from byol.config.presets import resolve


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config_arguments(p, out_help="folder of the variants' runs, ablations.md/.json and the plots")
    p.add_argument(
        "--suite", default="paper",
        help="claims (the variants the claims read), paper (every variant), batch (the batch claims' variants), "
        "collapse (baseline, no predictor, τ = 0, τ = 1), or a comma list of variants",
    )  # fmt: skip
    p.add_argument(
        "--minutes", type=float,
        help="training time of the baseline (default 4); every other variant trains on as many images",
    )  # fmt: skip
    p.add_argument("--test", help="labelled test folder: kNN top-1 of each variant against DATA's features")
    p.add_argument(
        "--seeds", type=int, default=None,
        help="seeds per variant (the preset's seed and the next ones); 3 for the claims, paper and batch suites, "
        "else 1",
    )  # fmt: skip
    p.add_argument(
        "--scale-tau", action=argparse.BooleanOptionalAction, default=None,
        help="scale the τ variants' τ_base to the run's length, the target's lag the same share of the run as in "
        "the paper (default: off, so each τ arm trains the τ_base its label says; scaled arms are not the paper's, "
        "and the τ order claim then reads 'not run')",
    )  # fmt: skip
    p.add_argument(
        "--probe-epochs", type=float,
        help="train the collapse probes (no predictor, τ = 0) at most this many epochs; their verdict reads a "
        "collapse, which shows within 2 (default: as long as every other variant)",
    )  # fmt: skip
    p.add_argument("--report-only", action="store_true", help="rewrite the report and plots from DIR's results")


def run(args: argparse.Namespace) -> int:
    from byol.ablate import AblationRunner, run_ablations

    base = resolve(pick_preset(args.preset, args.data), overrides_from_args(args))
    if args.report_only:
        results = AblationRunner(base, Path(args.out), None).report()
        print(json.dumps({"out": args.out, "variants": list(results.get("variants", {}))}))
        return 0
    if args.minutes is None and args.epochs is not None:  # every variant trains --epochs
        minutes, epochs = None, args.epochs
    else:  # the baseline trains --minutes, every other variant as many epochs
        minutes, epochs = (4.0 if args.minutes is None else args.minutes), None
    claims_suite = args.suite in ("claims", "paper", "batch")
    seeds = args.seeds if args.seeds is not None else (3 if claims_suite else 1)
    scale = bool(args.scale_tau)  # off unless asked: the τ arms then train the τ_base their label says
    results = run_ablations(base, args.out, args.suite, minutes, args.test, epochs, seeds, scale, args.probe_epochs)
    verdicts = {c["claim"]: c["verdict"] for c in results.get("claims", [])}
    print(json.dumps({"out": args.out, "variants": list(results.get("variants", {})), "claims": verdicts}))
    return 0

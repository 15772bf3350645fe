"""Does bf16 learn as fp32 does? The same short run in both precisions, seed by seed, scored by kNN.

Each seed trains ``make demo``'s recipe (the ``cpu`` preset with ``byol.demo.DEMO_RECIPE``) for
``--epochs`` on the training folder twice, ``run.precision`` fp32 and bf16 (bf16 autocast asked for
outright, whatever ``auto`` would pick on this host), from the same seed: the same initial weights and
the same augmentation draws. Both encoders are scored by the weighted kNN of ``byol eval knn``
(k 200, T 0.1) from the training folder to the test folder.

    python benchmarks/precision_accuracy.py [--data ../shared/data/cifar10] [--epochs 2] [--seeds 0 1 2]
        [--out precision-accuracy] [--set KEY=VALUE ...]

A run whose ``result.json`` exists is not trained again: a cut run resumes where it stopped. Prints a
table, then one JSON line (also ``OUT/results.json``): the CPU, each run's top-1, steps and images/s,
the per-seed differences bf16 − fp32 with their mean and 95% interval (Student's t), and each
precision's mean and standard deviation over seeds (the seed noise the difference is judged against).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from seed_stats import mean_std, paired  # benchmarks/ is on the path: a script, or a test puts it there

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "cifar10"
PRECISIONS = ("fp32", "bf16")


def train_and_score(data: Path, precision: str, seed: int, epochs: float, run_dir: Path, sets: list[str]) -> dict:
    """One run of the demo's recipe in ``precision``, its kNN top-1 on the test folder (cached in ``result.json``)."""
    done = run_dir / "result.json"
    if done.exists():
        return json.loads(done.read_text())
    from byol.cli.common import nested, parse_assignment
    from byol.config.io import merge
    from byol.config.presets import resolve
    from byol.demo import DEMO_RECIPE
    from byol.eval.runner import EncoderEval, knn_evaluate
    from byol.train.pretrain import pretrain

    train, test = str(data / "train"), str(data / "test")
    run = {"epochs": epochs, "time_budget": None, "precision": precision, "seed": seed}
    overrides = merge(DEMO_RECIPE, {"data": {"path": train}, "run": run})
    for item in sets:
        overrides = merge(overrides, nested(*parse_assignment(item)))
    cfg = resolve("cpu", overrides)
    t0 = time.perf_counter()
    result = pretrain(cfg, run_dir, resume=True, progress=False)
    wall = time.perf_counter() - t0
    summary = json.loads((run_dir / "summary.json").read_text())
    knn = knn_evaluate(EncoderEval.load(run_dir, "cpu", seed=seed, workers=cfg.data.workers), train, test)
    figures = {
        "precision": precision, "trained_in": summary.get("precision"), "seed": seed, "epochs": result.epochs,
        "steps": result.steps, "seconds": result.seconds, "wall_seconds": wall,
        "images_per_sec": result.images_seen / result.seconds if result.seconds else None,
        "knn_top1": knn["top1"], "knn_top5": knn["top5"],
    }  # fmt: skip
    done.write_text(json.dumps(figures, indent=1))
    return figures


def summarise(args, runs: list[dict]) -> dict:
    from byol.device import cpu_bf16_units, cpu_name

    top1 = {p: {r["seed"]: r["knn_top1"] for r in runs if r["precision"] == p} for p in PRECISIONS}
    seeds = [s for s in args.seeds if all(s in top1[p] for p in PRECISIONS)]
    figures = {
        "cpu": cpu_name(), "bf16_units": cpu_bf16_units(), "epochs": args.epochs, "seeds": seeds,
        "recipe": "cpu preset + byol.demo.DEMO_RECIPE", "runs": runs,
        "bf16_minus_fp32": paired([top1["bf16"][s] - top1["fp32"][s] for s in seeds]),
    }  # fmt: skip
    for p in PRECISIONS:
        spread = mean_std([top1[p][s] for s in seeds])
        figures[f"{p}_mean"], figures[f"{p}_std"] = spread["mean"], spread["std"]
        speeds = [r["images_per_sec"] for r in runs if r["precision"] == p and r["images_per_sec"]]
        figures[f"{p}_images_per_sec_median"] = statistics.median(speeds) if speeds else None
    return figures


def print_table(figures: dict) -> None:
    pts = lambda x: f"{100 * x:+.2f}"  # noqa: E731
    print(f"# {figures['cpu']}, bf16 units: {figures['bf16_units']}; {figures['epochs']} epochs, {figures['recipe']}")
    print(f"{'seed':>5}{'precision':>10}{'trained in':>11}{'steps':>7}{'images/s':>10}{'kNN top-1':>11}")
    for r in sorted(figures["runs"], key=lambda r: (r["seed"], r["precision"] != "fp32")):
        ips = f"{r['images_per_sec']:.0f}" if r["images_per_sec"] else "-"
        trained_in = r["trained_in"] or "-"
        top1 = f"{100 * r['knn_top1']:.2f}%"
        print(f"{r['seed']:>5}{r['precision']:>10}{trained_in:>11}{r['steps']:>7}{ips:>10}{top1:>11}")
    d, f = figures["bf16_minus_fp32"], figures
    print(
        f"fp32 {100 * f['fp32_mean']:.2f} ± {100 * f['fp32_std']:.2f}, bf16 {100 * f['bf16_mean']:.2f} "
        f"± {100 * f['bf16_std']:.2f} (mean ± std over seeds); bf16 − fp32 per seed "
        f"{', '.join(pts(x) for x in d['per_seed'])}, mean {pts(d['mean'])} (95% interval {pts(d['ci95'][0])} to "
        f"{pts(d['ci95'][1])})"
    )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="a folder with train/ and test/ class folders")
    p.add_argument("--epochs", type=float, default=2.0)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--out", type=Path, default=Path("precision-accuracy"))
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="any config value, as pretrain's")
    args = p.parse_args(argv)
    import logging

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    runs = [
        train_and_score(args.data, precision, seed, args.epochs, args.out / f"{precision}-seed{seed}", args.set)
        for seed in args.seeds
        for precision in PRECISIONS  # interleaved: a slower hour of a shared machine falls on both
    ]
    figures = summarise(args, runs)
    print_table(figures)
    line = json.dumps(figures)
    (args.out / "results.json").write_text(line + "\n")
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())

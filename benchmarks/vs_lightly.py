"""byol beside lightly's own code on the same CPU: same backbone, batch and steps, then the same kNN (issue 29).

Three sides, each seed, each side in its own process (``OUT/runs/<side>-s<seed>/``):

- ``lightly``: lightly 1.6's documented CIFAR-10 BYOL (``benchmarks/lightly_recipe.py``): its
  ``BYOLTransform`` (blur off at 32 px) per image in DataLoader workers over torchvision's
  ``ImageFolder``; its heads (hidden 1024, output 256), ``NegativeCosineSimilarity`` averaged over
  the two view orders, ``update_momentum``; SGD lr 0.06 × batch/128, momentum 0.9, weight decay
  5e-4 on every parameter. Its schedules (``--peer-schedules``): ``aligned`` (default) steps the
  cosine lr and a cosine τ from 0.99 to 1 at every step, byol's curves; ``documented`` is lightly's
  file as it is, CosineAnnealingLR over the epochs, stepped per epoch, and τ held at 0.99.
- ``byol_lightly``: ``byol pretrain`` with that recipe in byol's units: byol's loss is the paper's
  (2 − 2cos, the two orders summed), four times lightly's gradient, so lr ÷ 4 (0.03 per 256 images)
  and weight decay × 4 (2e-3) give SGD the same update; heads 1024 wide; no warm-up; τ_base 0.99.
  One difference stays: byol excludes biases and norm parameters from weight decay (the paper's
  rule), lightly decays every parameter.
- ``byol_cifar10``: byol's own ``cifar10`` preset (solo-learn's LARS recipe) at the same width,
  batch and steps.

Every side trains ResNet-18 with the CIFAR stem (byol's backbone, ``--width``) for ``--epochs``
over the training folder (drop_last: the same steps), then its encoder is scored by byol's kNN
protocol (every training image in the bank, the test images as queries, k 200, T 0.1, the 32 px
image as is). Beside it, per seed: the same backbone untrained, and untrained with its BatchNorm
statistics adapted to the training images (what BatchNorm alone gains without learning).

    python benchmarks/vs_lightly.py [--data ../shared/data/cifar10] [--out vs-lightly] [--width 0.125]
        [--batch 128] [--epochs 1] [--seeds 0 1 2] [--sides lightly byol_lightly byol_cifar10]

A side whose ``result.json`` exists is not run again: a cut run resumes where it stopped. Prints a
table, then one JSON line (gains, their means and std over seeds, images/s, byol / lightly ratios),
also written to ``OUT/results.json``. Needs ``pip install -e '.[bench]'``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "cifar10"
SIDES = ("lightly", "byol_lightly", "byol_cifar10")
LIGHTLY_LR, LIGHTLY_WD, LIGHTLY_TAU, LIGHTLY_HIDDEN = 0.06, 5e-4, 0.99, 1024  # per 128 images, lightly's loss
GRADIENT_RATIO = 4  # byol's loss over lightly's: (2 − 2cos) summed over both orders vs ½(−cos − cos)


def byol_flags(side: str, args) -> list[str]:
    """``byol pretrain`` flags of a byol side (the kNN monitor and online classifier off: neither side has them)."""
    common = ["--preset", "cifar10", "--backbone", "resnet18", "--width", str(args.width), "--batch-size",
              str(args.batch), "--epochs", str(args.epochs), "--seed", str(args.seed), "--knn-every", "0",
              "--set", "run.online_classifier=false", "--set", f"run.log_every={args.log_every}"]  # fmt: skip
    if side == "byol_cifar10":
        return common
    lr_per_256 = LIGHTLY_LR * 256 / 128 / GRADIENT_RATIO  # 0.03: byol scales lr by batch/256, lightly by batch/128
    return [*common, "--optimizer", "sgd", "--lr", f"{lr_per_256:g}", "--weight-decay",
            f"{LIGHTLY_WD * GRADIENT_RATIO:g}", "--warmup-epochs", "0", "--tau-base", str(LIGHTLY_TAU),
            "--set", f"model.projector_hidden={LIGHTLY_HIDDEN}",
            "--set", f"model.predictor_hidden={LIGHTLY_HIDDEN}"]  # fmt: skip


def config(args):
    """byol's resolved cifar10 config at this width: the backbone, views and evaluation meta of every side."""
    from byol.presets import resolve

    over = {"data": {"path": str(args.data / "train")}, "model": {"width": args.width, "backbone": "resnet18"}}
    return resolve("cifar10", over)


def train_lightly(args, run_dir: Path) -> dict:
    """lightly's recipe for ``epochs × (N // batch)`` steps; writes metrics.jsonl, returns the run's figures."""
    import torch
    import torchvision
    from lightly.loss import NegativeCosineSimilarity
    from lightly_recipe import PeerBYOL, peer_transform

    from byol.dist import default_workers
    from byol.encoder_io import build_configured_encoder
    from byol.schedules import lr_schedule, tau_schedule
    from byol.train.diagnostics import centred_diagnostics, effective_rank

    cfg = config(args)
    torch.manual_seed(args.seed)
    enc = build_configured_encoder(cfg.model, cfg.data.image_size)
    model = PeerBYOL(enc.module, enc.feature_dim, LIGHTLY_HIDDEN, cfg.model.projection_dim).train()
    dataset = torchvision.datasets.ImageFolder(
        str(args.data / "train"), transform=peer_transform(cfg.data.image_size, *cfg.augment.views())
    )
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=args.batch, shuffle=True, drop_last=True, num_workers=default_workers(),
        persistent_workers=True, generator=torch.Generator().manual_seed(args.seed),
    )  # fmt: skip
    lr = LIGHTLY_LR * args.batch / 128
    optimizer = torch.optim.SGD(model.online_parameters(), lr=lr, momentum=0.9, weight_decay=LIGHTLY_WD)
    epochs = math.ceil(args.epochs)
    total = round(args.epochs * len(loader))
    documented = args.peer_schedules == "documented"
    per_epoch = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs) if documented else None
    criterion = NegativeCosineSimilarity()
    metrics = (run_dir / "metrics.jsonl").open("w")
    step, start, first = 0, time.perf_counter(), None
    for _ in range(epochs):
        for (x0, x1), _labels in loader:
            if step == total:
                break
            tau = LIGHTLY_TAU
            if per_epoch is None:
                tau = tau_schedule(step, total, LIGHTLY_TAU)
                for group in optimizer.param_groups:
                    group["lr"] = lr_schedule(step, total, lr)
            loss = model.training_step(x0, x1, tau, criterion)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            step += 1
            if step == 1:
                first = time.perf_counter()  # worker start-up and the first step left out, as byol does
            if step % args.log_every == 0 or step == total:
                rep, proj = (t.float() for t in model.last)
                line = {"step": step, "epoch": step / len(loader), "loss": loss.item(),
                        "lr": optimizer.param_groups[0]["lr"], "tau": tau, **centred_diagnostics(proj),
                        "effective_rank": effective_rank(rep), "projection_rank": effective_rank(proj)}  # fmt: skip
                metrics.write(json.dumps(line) + "\n")
                metrics.flush()
        if per_epoch is not None:
            per_epoch.step()
    metrics.close()
    seconds = time.perf_counter() - first
    torch.save(model.backbone.state_dict(), run_dir / "backbone.pt")
    return {"steps": step, "epochs": step / len(loader), "images_per_sec": (step - 1) * args.batch / seconds,
            "seconds": seconds, "wall_seconds": time.perf_counter() - start, "final_loss": loss.item()}  # fmt: skip


def train_byol(side: str, args, run_dir: Path) -> dict:
    cmd = [sys.executable, "-m", "byol.cli", "pretrain", str(args.data / "train"), "--out", str(run_dir),
           "--no-progress", *byol_flags(side, args)]  # fmt: skip
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    done = json.loads((run_dir / "summary.json").read_text())
    keep = ("steps", "epochs", "images_per_sec", "seconds", "compile_seconds", "final_loss")
    return {**{k: done[k] for k in keep}, "wall_seconds": time.perf_counter() - start, "flags": byol_flags(side, args)}


def evaluator(args, run_dir: Path | None):
    """byol's ``EncoderEval`` of a side's trained encoder (lightly's backbone in byol's meta), or the untrained one."""
    import torch

    from byol.encoder_io import build_configured_encoder, run_encoder_meta
    from byol.eval.runner import EncoderEval

    if run_dir is not None and (run_dir / "encoder.safetensors").exists():
        return EncoderEval.load(run_dir, "cpu", seed=args.seed)
    cfg = config(args)
    enc = build_configured_encoder(cfg.model, cfg.data.image_size)
    meta, encoder = run_encoder_meta(cfg, enc.feature_dim), enc.module
    if run_dir is not None:
        encoder.load_state_dict(torch.load(run_dir / "backbone.pt", weights_only=True), strict=True)
    return EncoderEval(encoder.eval(), meta, "cpu", seed=args.seed)


def child(args) -> int:
    """One side of one seed (or the seed's baselines), in this process: trains, scores, writes result.json."""
    from byol.eval.runner import knn_evaluate

    train, test = str(args.data / "train"), str(args.data / "test")
    run_dir = args.out / "runs" / f"{args.side}-s{args.seed}"
    run_dir.mkdir(parents=True, exist_ok=True)
    result: dict = {"side": args.side, "seed": args.seed}
    start = time.perf_counter()
    if args.side == "baselines":
        ev = evaluator(args, None).untrained()
        result["knn_untrained"] = knn_evaluate(ev, train, test)["top1"]
        result["knn_bn_adapted"] = knn_evaluate(ev.bn_adapted(train), train, test)["top1"]
    else:
        result.update(train_lightly(args, run_dir) if args.side == "lightly" else train_byol(args.side, args, run_dir))
        result["knn"] = knn_evaluate(evaluator(args, run_dir), train, test)["top1"]
        for big in ("checkpoints", "tb", "backbone.pt", "encoder.safetensors", ".lock"):  # kept out of the results
            path = run_dir / big
            if path.is_dir():
                import shutil

                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
    result["side_seconds"] = time.perf_counter() - start
    (run_dir / "result.json").write_text(json.dumps(result, indent=1) + "\n")
    return 0


def summarise(args, results: list[dict]) -> dict:
    by = {(r["side"], r["seed"]): r for r in results}
    seeds = sorted({r["seed"] for r in results})
    figures: dict = {"width": args.width, "batch": args.batch, "epochs": args.epochs, "seeds": seeds,
                     "peer_schedules": args.peer_schedules, "cpu": _cpu()}  # fmt: skip
    rows = []
    for side in args.sides:
        gains, bn_gains, knns, speeds, steps = [], [], [], [], set()
        for seed in seeds:
            r, base = by.get((side, seed)), by.get(("baselines", seed))
            if r is None or base is None:
                continue
            knns.append(r["knn"])
            gains.append(r["knn"] - base["knn_untrained"])
            bn_gains.append(r["knn"] - base["knn_bn_adapted"])
            speeds.append(r["images_per_sec"])
            steps.add(r["steps"])
        if not knns:
            continue
        row = {"side": side, "runs": len(knns), "steps": sorted(steps), "knn": _ms(knns), "gain": _ms(gains),
               "gain_over_bn_adapted": _ms(bn_gains), "images_per_sec": statistics.median(speeds),
               "per_seed_knn": knns}  # fmt: skip
        rows.append(row)
    bases = [by[("baselines", s)] for s in seeds if ("baselines", s) in by]
    figures["untrained"] = _ms([b["knn_untrained"] for b in bases])
    figures["bn_adapted"] = _ms([b["knn_bn_adapted"] for b in bases])
    figures["rows"] = rows
    peer = next((r for r in rows if r["side"] == "lightly"), None)
    for row in rows:
        if peer is not None and row is not peer:
            figures[f"{row['side']}_gain_minus_lightly"] = row["gain"]["mean"] - peer["gain"]["mean"]
            figures[f"{row['side']}_vs_lightly_speed"] = row["images_per_sec"] / peer["images_per_sec"]
    return figures


def _ms(values: list[float]) -> dict:
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0}


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


def print_table(figures: dict) -> None:
    pct = lambda d: f"{100 * d['mean']:5.1f} ± {100 * d['std']:.1f}"  # noqa: E731
    print(f"ResNet-18 w{figures['width']}, batch {figures['batch']}, {figures['epochs']} epochs, seeds "
          f"{figures['seeds']}, {figures['cpu']}; untrained {pct(figures['untrained'])}, "
          f"BatchNorm-adapted {pct(figures['bn_adapted'])}")  # fmt: skip
    print(f"{'side':<14}{'runs':>5}{'steps':>8}{'kNN %':>14}{'gain':>14}{'over BN-adapted':>17}{'images/s':>10}")
    for r in figures["rows"]:
        steps = "/".join(map(str, r["steps"]))
        print(f"{r['side']:<14}{r['runs']:>5}{steps:>8}{pct(r['knn']):>14}{pct(r['gain']):>14}"
              f"{pct(r['gain_over_bn_adapted']):>17}{r['images_per_sec']:>10.0f}")  # fmt: skip


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="a folder with train/ and test/ (<class>/*.jpg)")
    p.add_argument("--out", type=Path, default=Path("vs-lightly"))
    p.add_argument("--width", type=float, default=0.125, help="ResNet-18's channel multiplier")
    p.add_argument("--batch", type=int, default=128, help="lightly's documented batch is 128 (and 512)")
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--sides", nargs="+", default=list(SIDES), choices=SIDES)
    p.add_argument("--peer-schedules", choices=["aligned", "documented"], default="aligned")
    p.add_argument("--log-every", type=int, default=25)
    p.add_argument("--side", choices=[*SIDES, "baselines"], help=argparse.SUPPRESS)  # one side, in a child
    p.add_argument("--seed", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.data, args.out = args.data.resolve(), args.out.resolve()
    if args.side:
        return child(args)
    sys.path.insert(0, str(Path(__file__).parent))
    import lightly_recipe

    if "lightly" in args.sides and not lightly_recipe.available():
        raise SystemExit("vs_lightly.py: lightly is not installed: pip install -e '.[bench]'")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(Path(__file__).parent)])}
    forwarded = ["--data", str(args.data), "--out", str(args.out), "--width", str(args.width), "--batch",
                 str(args.batch), "--epochs", str(args.epochs), "--peer-schedules", args.peer_schedules,
                 "--log-every", str(args.log_every)]  # fmt: skip
    results = []
    for seed in args.seeds:
        for side in ("baselines", *args.sides):
            done = args.out / "runs" / f"{side}-s{seed}" / "result.json"
            if not done.exists():
                print(f"vs_lightly: {side} seed {seed}", file=sys.stderr, flush=True)
                cmd = [sys.executable, __file__, *forwarded, "--side", side, "--seed", str(seed)]
                subprocess.run(cmd, check=True, env=env)
            results.append(json.loads(done.read_text()))
    figures = summarise(args, results)
    (args.out / "results.json").write_text(json.dumps(figures, indent=1) + "\n")
    print_table(figures)
    print(json.dumps({k: v for k, v in figures.items() if k != "rows"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

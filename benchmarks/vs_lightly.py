"""byol beside lightly's own code on the same CPU: same backbone, batch and steps, then the same kNN (issues 29, 41).

Three modes (``--mode``), each seed in its own process, each writing ``OUT/runs/<side>-s<seed>/result.json``:

- ``parity``: training dynamics on the same inputs. One process per seed builds one backbone and
  copies it into lightly's BYOL modules (``lightly_recipe.PeerBYOL``: its heads, ``NegativeCosineSimilarity``
  over the two view orders, ``update_momentum`` before the forward pass, τ from its ``cosine_schedule``,
  lr from its ``CosineWarmupScheduler``) and into byol's method (``byol.method``, ``train_step``, τ and lr
  from ``byol.schedules.Plan``). Every step, byol's batched augmentation draws one pair of views from the
  seed and both sides train on that pair: the same images, crops and colours, the same number of steps,
  the same optimiser (AdamW: its update does not depend on the loss's scale, 4× larger in byol's units;
  byol keeps biases and norm parameters out of weight decay, the paper's rule, lightly's examples decay
  every parameter) at the ``cpu`` preset's lr, weight decay, warm-up, τ_base, batch and heads, on its
  backbone (a convnet at width 0.5, 32 px: the model that learns visibly on a CPU). Then byol's kNN of
  each encoder, of the shared start and of the start with its BatchNorm statistics adapted to the
  training images. Reports each side's gain over that BatchNorm-adapted start, the paired difference
  per seed and its 95% interval.
- ``pipelines``: each library's own pipeline, end to end (below).
- ``time``: time to accuracy: each library's pipeline and recipe for ``--minutes`` of training on the
  ``cpu`` preset's model (byol: ``byol pretrain --preset cpu --time-budget``; lightly: its documented
  recipe for as many epochs as its measured speed (``pipelines``) fits in the minutes), then the same kNN.

``pipelines`` (the mode of issue 29): three sides, each seed, each side in its own process:

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
import dataclasses
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from seed_stats import mean_std, paired  # benchmarks/ is on the path: a script, or a test puts it there

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "cifar10"
SIDES = ("lightly", "byol_lightly", "byol_cifar10", "byol_cpu")
PRESET_SIDES = {"byol_cifar10": "cifar10", "byol_cpu": "cpu"}  # byol's own recipe: a preset as it is
LIGHTLY_LR, LIGHTLY_WD, LIGHTLY_TAU, LIGHTLY_HIDDEN = 0.06, 5e-4, 0.99, 1024  # per 128 images, lightly's loss
GRADIENT_RATIO = 4  # byol's loss over lightly's: (2 − 2cos) summed over both orders vs ½(−cos − cos)


def byol_flags(side: str, args) -> list[str]:
    """``byol pretrain`` flags of a byol side (the kNN monitor and online classifier off: neither side has
    them): the model of ``--preset`` (ResNet-18 at ``--width`` for cifar10), a preset's own recipe
    (``byol_cifar10``, ``byol_cpu``) or lightly's in byol's units (``byol_lightly``)."""
    model = ["--backbone", "resnet18", "--width", str(args.width)] if args.preset == "cifar10" else []
    length = ["--time-budget", str(args.minutes)] if args.mode == "time" else ["--epochs", str(args.epochs)]
    common = ["--preset", PRESET_SIDES.get(side, args.preset), *model, "--batch-size", str(args.batch), *length,
              "--seed", str(args.seed), "--knn-every", "0", "--set", "run.online_classifier=false",
              "--set", f"run.log_every={args.log_every}"]  # fmt: skip
    if side in PRESET_SIDES:
        return common
    lr_per_256 = LIGHTLY_LR * 256 / 128 / GRADIENT_RATIO  # 0.03: byol scales lr by batch/256, lightly by batch/128
    return [*common, "--optimizer", "sgd", "--lr", f"{lr_per_256:g}", "--weight-decay",
            f"{LIGHTLY_WD * GRADIENT_RATIO:g}", "--warmup-epochs", "0", "--tau-base", str(LIGHTLY_TAU),
            "--set", f"model.projector_hidden={LIGHTLY_HIDDEN}",
            "--set", f"model.predictor_hidden={LIGHTLY_HIDDEN}"]  # fmt: skip


def config(args):
    """byol's resolved ``--preset`` config (cifar10: ResNet-18 at ``--width``): the backbone, views and
    evaluation meta of every side."""
    from byol.config.presets import resolve

    over = {"data": {"path": str(args.data / "train")}, "optim": {"batch_size": args.batch}}
    if args.preset == "cifar10":
        over["model"] = {"width": args.width, "backbone": "resnet18"}
    return resolve(args.preset, over)


def train_lightly(args, run_dir: Path) -> dict:
    """lightly's recipe for ``epochs × (N // batch)`` steps; writes metrics.jsonl, returns the run's figures."""
    import torch
    import torchvision
    from lightly.loss import NegativeCosineSimilarity
    from lightly_recipe import PeerBYOL, peer_transform

    from byol import build
    from byol.constants import default_workers
    from byol.schedules import lr_schedule, tau_schedule
    from byol.train.diagnostics import centred_diagnostics, effective_rank

    cfg = config(args)
    torch.manual_seed(args.seed)
    enc = build.encoder(cfg)
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
    planned = lightly_epochs(args) if args.mode == "time" else args.epochs
    epochs = math.ceil(planned)
    total = round(planned * len(loader))
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
    """``byol pretrain`` in a child process; with ``--cold``, into an empty image cache (its decoding is then
    in ``wall_seconds``, never in ``images_per_sec``, which counts training steps only)."""
    import shutil
    import tempfile

    cmd = [sys.executable, "-m", "byol.cli", "pretrain", str(args.data / "train"), "--out", str(run_dir),
           "--no-progress", *byol_flags(side, args)]  # fmt: skip
    env, cold = dict(os.environ), tempfile.mkdtemp(prefix="byol-cold-cache-") if args.cold else None
    if cold is not None:
        env["BYOL_CACHE_DIR"] = cold
    start = time.perf_counter()
    try:
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env)
    finally:
        if cold is not None:
            shutil.rmtree(cold, ignore_errors=True)
    done = json.loads((run_dir / "summary.json").read_text())
    keep = ("steps", "epochs", "images_per_sec", "seconds", "compile_seconds", "final_loss", "precision")
    return {**{k: done.get(k) for k in keep}, "wall_seconds": time.perf_counter() - start,
            "cache": "cold" if args.cold else "warm", "flags": byol_flags(side, args)}  # fmt: skip


def lightly_epochs(args) -> float:
    """The whole epochs (its documented schedule steps per epoch) nearest to ``--minutes`` of training at
    the speed lightly's pipeline reached in the ``pipelines`` runs of this preset
    (``--lightly-images-per-sec``): rounded, not cut, so lightly is not left with much less time."""
    if not args.lightly_images_per_sec:
        raise SystemExit("vs_lightly.py --mode time: give --lightly-images-per-sec (from a --mode pipelines run)")
    images = len(__import__("byol.data.folder", fromlist=["list_images"]).list_images(str(args.data / "train")))
    return max(1, round(args.minutes * 60 * args.lightly_images_per_sec / images))


def parity(args, run_dir: Path) -> dict:
    """``--mode parity``, one seed: lightly's BYOL modules and byol's method from one start, on the same views."""
    import copy

    import torch
    from lightly.loss import NegativeCosineSimilarity
    from lightly.utils.scheduler import CosineWarmupScheduler, cosine_schedule
    from lightly_recipe import PeerBYOL

    from byol import build
    from byol.data.loader import TrainData
    from byol.eval.runner import EncoderEval, knn_evaluate
    from byol.schedules import Plan
    from byol.train.engine import augmentation_generator, make_views, train_step

    cfg, device, train, test = config(args), torch.device("cpu"), str(args.data / "train"), str(args.data / "test")
    m, o = cfg.model, cfg.optim
    enc = build.encoder(cfg)
    start = EncoderEval(enc.module, build.encoder_meta(cfg, enc.feature_dim), "cpu", seed=args.seed).untrained()
    data = TrainData(train, cfg.data.image_size, o.batch_size, *cfg.augment.views(), seed=args.seed,
                     cache_dir=cfg.data.cache_dir or None, workers=0)  # fmt: skip
    augment = build.augmentation(cfg, compile=False)
    steps_per_epoch = data.batches_per_epoch()
    plan = Plan.for_run(steps_per_epoch, o.warmup_epochs, args.epochs)
    total, peak_lr = plan.total_steps, build.peak_lr(o, 1)

    torch.manual_seed(args.seed)  # byol: its method around a copy of the start, its optimiser and schedules
    method = build.method(cfg, copy.deepcopy(start.encoder).train(), enc.feature_dim).train()
    optimizer = build.optimizer(o, method.trained_modules(), peak_lr)
    torch.manual_seed(args.seed)  # lightly: its modules around another copy; AdamW as its examples build it
    peer = PeerBYOL(copy.deepcopy(start.encoder).train(), enc.feature_dim, m.projector_hidden, m.projection_dim,
                    m.predictor_hidden).train()  # fmt: skip
    peer_opt = torch.optim.AdamW(peer.online_parameters(), lr=peak_lr, weight_decay=o.weight_decay)
    peer_lr = CosineWarmupScheduler(peer_opt, warmup_epochs=plan.warmup_steps, max_epochs=total)
    criterion = NegativeCosineSimilarity()

    metrics, step, began = (run_dir / "metrics.jsonl").open("w"), 0, time.perf_counter()
    for epoch in range(math.ceil(args.epochs)):
        for batch in data.epoch(epoch):
            if step == total:
                break
            generator = augmentation_generator(args.seed, 0, step, 0, device)
            view1, view2 = make_views(augment, batch, device, generator)  # one pair of views for both sides
            lr, tau = plan.lr_at(step, peak_lr), plan.tau_at(step, o.tau_base)
            ours = train_step(method, optimizer, [(view1, view2)], lr)
            method.after_step(tau)
            momentum = cosine_schedule(step, total, o.tau_base, 1.0)
            theirs = peer.training_step(view1, view2, momentum, criterion)  # lightly moves its target first
            theirs.backward()
            peer_opt.step()
            peer_opt.zero_grad()
            step += 1
            if step % args.log_every == 0 or step == total:
                # The mean cosine of prediction and target, each side's loss in one unit: byol's loss is
                # Σ over the two orders of 2 − 2cos (4 − 4·cos̄), lightly's −cos̄.
                line = {"step": step, "byol_cos": 1 - ours.loss.item() / 4, "lightly_cos": -theirs.item(),
                        "byol_lr": lr, "lightly_lr": peer_opt.param_groups[0]["lr"], "byol_tau": tau,
                        "lightly_tau": momentum}  # fmt: skip
                metrics.write(json.dumps(line) + "\n")
                metrics.flush()
            peer_lr.step()
    metrics.close()
    seconds = time.perf_counter() - began

    def knn(encoder) -> float:
        ev = dataclasses.replace(start, encoder=encoder.eval())
        return knn_evaluate(ev, train, test)["top1"]

    return {"steps": step, "epochs": step / steps_per_epoch, "seconds": seconds, "model": m.backbone,
            "width": m.width, "batch": o.batch_size, "lr": peak_lr, "weight_decay": o.weight_decay,
            "tau_base": o.tau_base, "knn_byol": knn(method.encoder), "knn_lightly": knn(peer.backbone),
            "knn_untrained": knn(start.encoder), "knn_bn_adapted": knn(start.bn_adapted(train).encoder)}  # fmt: skip


def evaluator(args, run_dir: Path | None):
    """byol's ``EncoderEval`` of a side's trained encoder (lightly's backbone in byol's meta), or the untrained one."""
    import torch

    from byol import build
    from byol.eval.runner import EncoderEval

    if run_dir is not None and (run_dir / "encoder.safetensors").exists():
        return EncoderEval.load(run_dir, "cpu", seed=args.seed)
    cfg = config(args)
    enc = build.encoder(cfg)
    meta, encoder = build.encoder_meta(cfg, enc.feature_dim), enc.module
    if run_dir is not None:
        encoder.load_state_dict(torch.load(run_dir / "backbone.pt", weights_only=True), strict=True)
    return EncoderEval(encoder.eval(), meta, "cpu", seed=args.seed)


def child(args) -> int:
    """One side of one seed (or the seed's baselines), in this process: trains, scores, writes result.json."""
    from byol.eval.runner import knn_evaluate

    train, test = str(args.data / "train"), str(args.data / "test")
    run_dir = args.out / "runs" / f"{run_name(args.side, args)}-s{args.seed}"
    run_dir.mkdir(parents=True, exist_ok=True)
    result: dict = {"side": args.side, "seed": args.seed}
    start = time.perf_counter()
    if args.side == "parity":
        result.update(parity(args, run_dir))
    elif args.side == "baselines":
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


def run_name(side: str, args) -> str:
    """A side's folder: ``--cold`` byol runs apart from warm ones."""
    return f"{side}-cold" if args.cold and side.startswith("byol") else side


def summarise(args, results: list[dict]) -> dict:
    by = {(r["side"], r["seed"]): r for r in results}
    seeds = sorted({r["seed"] for r in results})
    model = f"ResNet-18 w{args.width}" if args.preset == "cifar10" else f"the {args.preset} preset's model"
    timed = args.mode == "time"  # each side's length is its own (``epochs`` in its row), not --epochs
    figures: dict = {"mode": args.mode, "model": model, "width": args.width if args.preset == "cifar10" else None,
                     "batch": args.batch, "epochs": None if timed else args.epochs,
                     "minutes": args.minutes if timed else None, "seeds": seeds,
                     "peer_schedules": args.peer_schedules, "cpu": _cpu()}  # fmt: skip
    rows = []
    for side in args.sides:
        gains, bn_gains, knns, speeds, steps, epochs = [], [], [], [], set(), []
        for seed in seeds:
            r, base = by.get((side, seed)), by.get(("baselines", seed))
            if r is None or base is None:
                continue
            knns.append(r["knn"])
            gains.append(r["knn"] - base["knn_untrained"])
            bn_gains.append(r["knn"] - base["knn_bn_adapted"])
            speeds.append(r["images_per_sec"])
            steps.add(r["steps"])
            epochs.append(r["epochs"])
        if not knns:
            continue
        row = {"side": side, "runs": len(knns), "steps": sorted(steps), "epochs": epochs, "knn": mean_std(knns),
               "gain": mean_std(gains), "gain_over_bn_adapted": mean_std(bn_gains),
               "images_per_sec": statistics.median(speeds), "per_seed_knn": knns}  # fmt: skip
        rows.append(row)
    bases = [by[("baselines", s)] for s in seeds if ("baselines", s) in by]
    figures["untrained"] = mean_std([b["knn_untrained"] for b in bases])
    figures["bn_adapted"] = mean_std([b["knn_bn_adapted"] for b in bases])
    figures["rows"] = rows
    peer = next((r for r in rows if r["side"] == "lightly"), None)
    for row in rows:
        if peer is not None and row is not peer:
            figures[f"{row['side']}_gain_minus_lightly"] = row["gain"]["mean"] - peer["gain"]["mean"]
            same_seed = [by[(row["side"], s)]["images_per_sec"] / by[("lightly", s)]["images_per_sec"]
                         for s in seeds if (row["side"], s) in by and ("lightly", s) in by]  # fmt: skip
            figures[f"{row['side']}_vs_lightly_speed_per_seed"] = same_seed
            figures[f"{row['side']}_vs_lightly_speed"] = statistics.median(same_seed) if same_seed else None
    figures["cache"] = "cold" if args.cold else "warm"
    figures["wall_seconds"] = {side: [by[(side, s)]["wall_seconds"] for s in seeds if (side, s) in by]
                               for side in args.sides}  # fmt: skip
    return figures


def summarise_parity(args, results: list[dict]) -> dict:
    """Each side's gain over the BatchNorm-adapted start, per seed and their mean; the paired difference."""
    rows = sorted((r for r in results if r["side"] == "parity"), key=lambda r: r["seed"])
    gain = {side: [r[f"knn_{side}"] - r["knn_bn_adapted"] for r in rows] for side in ("byol", "lightly")}
    return {
        "mode": "parity", "cpu": _cpu(), "preset": args.preset, "epochs": args.epochs,
        "seeds": [r["seed"] for r in rows], "steps": sorted({r["steps"] for r in rows}),
        "untrained": mean_std([r["knn_untrained"] for r in rows]),
        "bn_adapted": mean_std([r["knn_bn_adapted"] for r in rows]),
        "bn_adapted_per_seed": [r["knn_bn_adapted"] for r in rows],
        "knn_byol": mean_std([r["knn_byol"] for r in rows]), "knn_lightly": mean_std([r["knn_lightly"] for r in rows]),
        "gain_byol": {**mean_std(gain["byol"]), "per_seed": gain["byol"]},
        "gain_lightly": {**mean_std(gain["lightly"]), "per_seed": gain["lightly"]},
        "byol_minus_lightly": paired([b - a for b, a in zip(gain["byol"], gain["lightly"])]),
    }  # fmt: skip


def print_parity(figures: dict) -> None:
    pts = lambda v: f"{100 * v:+.1f}"  # noqa: E731
    print(f"same inputs: {figures['preset']} preset's model and recipe, {figures['epochs']} epochs "
          f"({'/'.join(map(str, figures['steps']))} steps), seeds {figures['seeds']}, {figures['cpu']}")  # fmt: skip
    print(f"{'seed':>5}{'BN-adapted %':>14}{'byol gain':>11}{'lightly gain':>14}{'byol − lightly':>16}")
    d = figures["byol_minus_lightly"]["per_seed"]
    for i, seed in enumerate(figures["seeds"]):
        print(f"{seed:>5}{100 * figures['bn_adapted_per_seed'][i]:>14.2f}{pts(figures['gain_byol']['per_seed'][i]):>11}"
              f"{pts(figures['gain_lightly']['per_seed'][i]):>14}{pts(d[i]):>16}")  # fmt: skip
    ci = figures["byol_minus_lightly"]["ci95"]
    print(
        f"mean: byol {pts(figures['gain_byol']['mean'])}, lightly {pts(figures['gain_lightly']['mean'])}, "
        f"difference {pts(figures['byol_minus_lightly']['mean'])} (95% interval {pts(ci[0])} to {pts(ci[1])})"
    )


def _cpu() -> str:
    from byol.device import cpu_name

    return cpu_name()


def print_table(figures: dict) -> None:
    pct = lambda d: f"{100 * d['mean']:5.1f} ± {100 * d['std']:.1f}"  # noqa: E731
    length = f"{figures['minutes']:g} minutes each" if figures.get("minutes") else f"{figures['epochs']} epochs"
    print(f"{figures.get('model', 'ResNet-18 w' + str(figures['width']))}, batch {figures['batch']}, "
          f"{length}, seeds "
          f"{figures['seeds']}, {figures['cpu']}; untrained {pct(figures['untrained'])}, "
          f"BatchNorm-adapted {pct(figures['bn_adapted'])}")  # fmt: skip
    print(f"{'side':<14}{'runs':>5}{'steps':>8}{'epochs':>8}{'kNN %':>14}{'gain':>14}{'over BN-adapted':>17}"
          f"{'images/s':>10}")  # fmt: skip
    for r in figures["rows"]:
        steps = "/".join(map(str, r["steps"]))
        epochs = "/".join(f"{e:.1f}" for e in r.get("epochs", []))
        print(f"{r['side']:<14}{r['runs']:>5}{steps:>8}{epochs:>8}{pct(r['knn']):>14}{pct(r['gain']):>14}"
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
    p.add_argument("--mode", choices=["pipelines", "parity", "time"], default="pipelines")
    p.add_argument(
        "--preset",
        choices=["cifar10", "cpu"],
        default="cifar10",
        help="the model (and byol's recipe): cifar10's ResNet-18 at --width, or the cpu preset's convnet",
    )
    p.add_argument("--minutes", type=float, default=20.0, help="--mode time: the training budget of each side")
    p.add_argument(
        "--lightly-images-per-sec",
        type=float,
        default=None,
        help="--mode time: lightly's pipeline speed here (--mode pipelines), for its epoch count",
    )
    p.add_argument("--cold", action="store_true", help="byol sides read an empty image cache (decoded first)")
    p.add_argument("--log-every", type=int, default=25)
    p.add_argument("--side", choices=[*SIDES, "baselines", "parity"], help=argparse.SUPPRESS)  # one side, in a child
    p.add_argument("--seed", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.data, args.out = args.data.resolve(), args.out.resolve()
    if args.side:
        return child(args)
    sys.path.insert(0, str(Path(__file__).parent))
    import lightly_recipe

    if ("lightly" in args.sides or args.mode == "parity") and not lightly_recipe.available():
        raise SystemExit("vs_lightly.py: lightly is not installed: pip install -e '.[bench]'")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(Path(__file__).parent)])}
    forwarded = ["--data", str(args.data), "--out", str(args.out), "--width", str(args.width), "--batch",
                 str(args.batch), "--epochs", str(args.epochs), "--peer-schedules", args.peer_schedules,
                 "--log-every", str(args.log_every), "--mode", args.mode, "--preset", args.preset,
                 "--minutes", str(args.minutes), *(["--cold"] if args.cold else []),
                 *(["--lightly-images-per-sec", str(args.lightly_images_per_sec)] if args.lightly_images_per_sec
                   else [])]  # fmt: skip
    sides = ("parity",) if args.mode == "parity" else ("baselines", *args.sides)
    results = []
    for seed in args.seeds:
        for side in sides:
            done = args.out / "runs" / f"{run_name(side, args)}-s{seed}" / "result.json"
            if not done.exists():
                print(f"vs_lightly: {side} seed {seed}", file=sys.stderr, flush=True)
                cmd = [sys.executable, __file__, *forwarded, "--side", side, "--seed", str(seed)]
                subprocess.run(cmd, check=True, env=env)
            results.append(json.loads(done.read_text()))
    if args.mode == "parity":
        figures = summarise_parity(args, results)
        (args.out / "results.json").write_text(json.dumps(figures, indent=1) + "\n")
        print_parity(figures)
        print(json.dumps(figures))
        return 0
    figures = summarise(args, results)
    (args.out / "results.json").write_text(json.dumps(figures, indent=1) + "\n")
    print_table(figures)
    print(json.dumps({k: v for k, v in figures.items() if k != "rows"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

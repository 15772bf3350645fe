"""End to end: images/s of the real ``byol pretrain`` loop against the peer's whole pipeline.

Both sides train the same model on the same image folder for ``--steps`` steps after ``--warmup``
steps (compilation, worker start-up and the first decode are not timed):

- ``byol``: ``byol.train.pretrain.pretrain`` itself: data (the uint8 cache of small images, or
  DataLoader workers for large ones), augmentation on the device, the step, logging, monitors and
  checkpoints as configured (the kNN monitor off).
- ``lightly``: lightly 1.6's documented pipeline: its ``BYOLTransform`` (PIL ops with the same
  probabilities as byol's views) applied per image in ``DataLoader`` workers over torchvision's
  ``ImageFolder``, then its step (heads, loss, ``update_momentum``, SGD) at byol's model sizes.
  Skipped when ``lightly`` is not installed (``pip install -e '.[bench]'``).

Each side runs in its own process, so its peak resident memory (``ru_maxrss``, the process and its
largest worker) is its own; the sides alternate for ``--repeats`` rounds.

    python benchmarks/epoch.py [--data ../shared/data/cifar10/train] [--preset cpu] [--steps 200]

Prints a table, then one JSON line with images/s, peak RSS and the ratio byol / lightly.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "cifar10" / "train"


def config(args):
    from byol.config.presets import resolve

    overrides = {
        "data": {"path": str(args.data)},
        "optim": {"batch_size": args.batch} if args.batch else {},
        "run": {"time_budget": None, "epochs": 1000, "knn_every": 0, "device": args.device, "log_every": 50},
    }
    return resolve(args.preset, overrides)


class Clock:
    """Marks the time at the end of step ``warmup`` and of step ``warmup + steps``, then stops the run."""

    class Done(Exception):
        pass

    def __init__(self, warmup: int, steps: int, device: str):
        self.warmup, self.steps, self.device, self.marks = warmup, steps, device, {}

    def __call__(self, step: int) -> None:
        if step in (self.warmup, self.warmup + self.steps):
            if self.device.startswith("cuda"):
                import torch

                torch.cuda.synchronize()
            self.marks[step] = time.perf_counter()
        if step >= self.warmup + self.steps:
            raise Clock.Done

    def seconds(self) -> float:
        return self.marks[self.warmup + self.steps] - self.marks[self.warmup]


def run_byol(args) -> float:
    from byol.train.pretrain import pretrain

    cfg = config(args)
    clock = Clock(args.warmup, args.steps, args.device)
    with tempfile.TemporaryDirectory() as tmp, contextlib.suppress(Clock.Done):
        pretrain(cfg, Path(tmp) / "run", progress=False, on_step=clock)
    return args.steps * cfg.optim.batch_size / clock.seconds()


def run_lightly(args) -> float:
    import torch
    import torchvision
    from lightly.loss import NegativeCosineSimilarity
    from lightly_recipe import PeerBYOL, peer_transform

    from byol.constants import default_workers
    from byol.models.backbones import build_encoder

    cfg = config(args)
    size, m = cfg.data.image_size, cfg.model
    transform = peer_transform(size, cfg.augment.view1, cfg.augment.view2)
    dataset = torchvision.datasets.ImageFolder(str(args.data), transform=transform)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=cfg.optim.batch_size, shuffle=True, drop_last=True, num_workers=default_workers(),
        persistent_workers=True,
    )  # fmt: skip
    device = torch.device(args.device)
    enc = build_encoder(m.backbone, m.width, size, m.small_images)
    model = PeerBYOL(enc.module, enc.feature_dim, m.projector_hidden, m.projection_dim, m.predictor_hidden)
    model = model.to(device).train()
    criterion = NegativeCosineSimilarity()
    optimizer = torch.optim.SGD(model.online_parameters(), lr=0.06)
    clock = Clock(args.warmup, args.steps, args.device)
    step = 0
    try:
        while True:
            for (x0, x1), _ in loader:
                model.training_step(x0.to(device), x1.to(device), 0.99, criterion).backward()
                optimizer.step()
                optimizer.zero_grad()
                step += 1
                clock(step)
    except Clock.Done:
        pass
    return args.steps * cfg.optim.batch_size / clock.seconds()


def peak_rss_mib() -> dict[str, float]:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    worker = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"rss_mib": own, "worker_rss_mib": worker}


def child(args) -> int:
    if args.impl == "lightly":
        try:
            import lightly  # noqa: F401
        except ImportError:
            print(json.dumps({"skipped": "lightly is not installed: pip install -e '.[bench]'"}))
            return 0
    ips = run_byol(args) if args.impl == "byol" else run_lightly(args)
    gc.collect()  # DataLoader workers are joined, so that their peak memory is counted
    print(json.dumps({"images_per_sec": ips, **peak_rss_mib()}))
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--preset", default="cpu", help="the model, batch and views of both sides")
    p.add_argument("--batch", type=int, default=None)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--impl", choices=["byol", "lightly"], help=argparse.SUPPRESS)  # one side, in a child process
    args = p.parse_args(argv)
    if args.impl:
        return child(args)
    runs: dict[str, list[dict]] = {"byol": [], "lightly": []}
    base = [sys.executable, __file__, "--data", str(args.data), "--preset", args.preset, "--device", args.device]
    base += ["--steps", str(args.steps), "--warmup", str(args.warmup)] + (
        ["--batch", str(args.batch)] if args.batch else []
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    for _ in range(args.repeats):
        for impl in runs:
            out = subprocess.run([*base, "--impl", impl], capture_output=True, text=True, env=env)
            if out.returncode != 0:
                raise SystemExit(f"{impl} failed:\n{out.stderr[-3000:]}")
            runs[impl].append(json.loads(out.stdout.strip().splitlines()[-1]))
    figures = {"preset": args.preset, "steps": args.steps, "device": args.device}
    print(f"{'pipeline':<10}{'images/s':>10}{'peak RSS MiB':>14}{'worker RSS MiB':>16}")
    for impl, rows in runs.items():
        if not rows or "skipped" in rows[0]:
            print(f"{impl:<10}{'skipped: ' + rows[0]['skipped'] if rows else ''}")
            continue
        ips = statistics.median(r["images_per_sec"] for r in rows)
        rss = max(r["rss_mib"] for r in rows)
        worker = max(r["worker_rss_mib"] for r in rows)
        figures.update({f"{impl}_images_per_sec": ips, f"{impl}_rss_mib": rss, f"{impl}_worker_rss_mib": worker})
        print(f"{impl:<10}{ips:>10.0f}{rss:>14.0f}{worker:>16.0f}")
    if "lightly_images_per_sec" in figures:
        ratios = [b["images_per_sec"] / li["images_per_sec"] for b, li in zip(runs["byol"], runs["lightly"])]
        figures["byol_vs_lightly"] = statistics.median(ratios)
    print(json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in figures.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The training step: byol against the backbone's own cost and against the best-known peer recipe.

One step = both views through the online network with gradients and through the target without,
plus whatever each implementation adds (heads, loss, optimiser, target update). Timed on fixed
random views (augmentation is measured by ``augment.py``), in one process, interleaved per repeat:

- ``byol``: the real step of ``byol pretrain`` with the preset's optimiser, memory format and
  precision (``byol.train.setup.build_model``, ``train_step``, ``after_step``).
- ``floor`` / ``floor_cl``: the backbone alone, contiguous / channels_last: forward and backward of
  each view as its own batch, and the no-grad forward of a target copy. No step can cost less.
- ``lightly``: lightly 1.6's documented BYOL example (its heads, loss, ``update_momentum`` and SGD;
  contiguous), at byol's backbone and head sizes; skipped when ``lightly`` is not installed
  (``pip install -e '.[bench]'``).

    python benchmarks/step.py [--configs r18w025_32px ...] [--repeats 5] [--steps 3]
    python benchmarks/step.py --device cuda --compile --batch-scale 8   # on a GPU (bf16: precision auto)

Prints a table (median seconds per step, images/s, achieved TFLOP/s counted by
``torch.utils.flop_counter``), then one JSON line (a config's name ends with its batch,
e.g. ``r18w025_32px_b256``): ``<config>_<impl>_s``,
``<config>_byol_vs_lightly`` (peer seconds / byol seconds: > 1 means byol is faster) and
``<config>_byol_vs_floor_cl`` (byol seconds / channels_last floor: the heads, loss, target update
and optimiser on top of the backbone), each ratio the median of the per-repeat ratios.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from collections.abc import Callable

import lightly_recipe  # benchmarks/ is on the path: this file runs as a script, or a test puts it there
import torch

from byol.config.presets import resolve
from byol.device import DevicePolicy, autocast_for, resolve_precision
from byol.dist import DistInfo
from byol.models.backbones import build_encoder
from byol.train.engine import train_step
from byol.train.setup import build_model

# name -> (preset, overrides of the preset, batch); every model as byol pretrain builds it.
CONFIGS = {
    "r18w025_32px": ("cifar10", {"model": {"width": 0.25}}, 256),
    "r18w1_32px": ("cifar10", {"model": {"width": 1.0}}, 64),
    "convnet_32px": ("cpu", {}, 256),
    "r50_224px": ("imagenet", {}, 16),
}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def byol_step(cfg, device: torch.device, views) -> Callable[[], None]:
    policy = DevicePolicy.resolve(device, cfg.run.precision, cfg.run.channels_last)
    method, model, optimizer, peak_lr = build_model(cfg, policy, DistInfo())
    method.train()
    v = [tuple(x.contiguous(memory_format=policy.memory_format) for x in views)]

    def step():
        train_step(model, optimizer, v, peak_lr, policy.autocast())
        method.after_step(cfg.optim.tau_base)

    return step


def floor_step(cfg, device: torch.device, views, channels_last: bool) -> Callable[[], None]:
    enc = build_encoder(cfg.model.backbone, cfg.model.width, cfg.data.image_size, cfg.model.small_images)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    online = enc.module.to(device).to(memory_format=fmt).train()
    target = copy.deepcopy(online).requires_grad_(False)
    v1, v2 = (x.contiguous(memory_format=fmt) for x in views)
    precision = resolve_precision(cfg.run.precision, device)
    if cfg.run.compile:
        online, target = torch.compile(online), torch.compile(target)

    def step():
        for p in online.parameters():
            p.grad = None
        with autocast_for(precision, device):
            loss = online(v1).float().sum() + online(v2).float().sum()
            with torch.no_grad():
                target(v1), target(v2)
        loss.backward()

    return step


def lightly_step(cfg, device: torch.device, views) -> Callable[[], None] | None:
    """lightly's BYOL step (``lightly_recipe.PeerBYOL``: its heads, loss, ``update_momentum``), SGD, at byol's sizes."""
    if not lightly_recipe.available():
        return None
    from lightly.loss import NegativeCosineSimilarity

    enc, m = build_encoder(cfg.model.backbone, cfg.model.width, cfg.data.image_size, cfg.model.small_images), cfg.model
    model = lightly_recipe.PeerBYOL(
        enc.module, enc.feature_dim, m.projector_hidden, m.projection_dim, m.predictor_hidden
    )
    model = model.to(device).train()
    criterion = NegativeCosineSimilarity()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.06)
    x0, x1 = views

    def step():
        model.training_step(x0, x1, 0.99, criterion).backward()
        optimizer.step()
        optimizer.zero_grad()

    return step


def count_flops(step: Callable[[], None]) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        step()
    return float(counter.get_total_flops())


def time_steps(step: Callable[[], None], device: torch.device, n: int) -> list[float]:
    out = []
    for _ in range(n):
        sync(device)
        start = time.perf_counter()
        step()
        sync(device)
        out.append(time.perf_counter() - start)
    return out


def build_impls(cfg, device, views, impls: list[str]) -> dict[str, Callable[[], None]]:
    makers = {
        "byol": lambda: byol_step(cfg, device, views),
        "floor": lambda: floor_step(cfg, device, views, channels_last=False),
        "floor_cl": lambda: floor_step(cfg, device, views, channels_last=True),
        "lightly": lambda: lightly_step(cfg, device, views),
    }
    built = {}
    for name in impls:
        torch.manual_seed(0)
        step = makers[name]()
        if step is None:
            print(f"# {name}: not installed (pip install -e '.[bench]'); row skipped", file=sys.stderr)
            continue
        built[name] = step
    return built


def run_config(config: str, args, device: torch.device) -> tuple[list[tuple], dict[str, float]]:
    preset, overrides, batch = CONFIGS[config]
    batch = args.batch or batch * args.batch_scale
    name = f"{config}_b{batch}"
    run = {"precision": args.precision, "compile": args.compile, "device": str(device)}
    cfg = resolve(preset, {**overrides, "optim": {"batch_size": batch}, "run": run})
    size = cfg.data.image_size
    g = torch.Generator().manual_seed(0)
    views = tuple(torch.randn(batch, 3, size, size, generator=g).to(device) for _ in range(2))
    impls = build_impls(cfg, device, views, args.impls)
    flops = {k: count_flops(step) for k, step in impls.items()}  # also the first warm-up step
    for step in impls.values():
        time_steps(step, device, args.warmup)
    runs: dict[str, list[float]] = {k: [] for k in impls}
    for _ in range(args.repeats):  # interleaved: every implementation in every repeat
        for k, step in impls.items():
            runs[k].append(statistics.median(time_steps(step, device, args.steps)))
    figures, rows = {}, []
    for k, times in runs.items():
        s = statistics.median(times)
        figures[f"{name}_{k}_s"] = s
        figures[f"{name}_{k}_gflop"] = flops[k] / 1e9
        rows.append((name, k, s, batch / s, flops[k] / s / 1e12))
    for peer, key, invert in (("lightly", "byol_vs_lightly", True), ("floor_cl", "byol_vs_floor_cl", False)):
        if peer in runs and "byol" in runs:
            ratios = [(p / b if invert else b / p) for b, p in zip(runs["byol"], runs[peer])]
            figures[f"{name}_{key}"] = statistics.median(ratios)
            figures[f"{name}_{key}_range"] = [min(ratios), max(ratios)]
    return rows, figures


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    p.add_argument("--impls", nargs="+", default=["byol", "floor", "floor_cl", "lightly"])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--steps", type=int, default=3, help="timed steps per implementation and repeat (median)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument(
        "--precision", default="auto", choices=["auto", "fp32", "bf16"], help="auto: bf16 on CUDA and on CPUs with AMX"
    )
    p.add_argument("--compile", action="store_true", help="torch.compile the model (byol, floor)")
    p.add_argument("--batch-scale", type=int, default=1, help="multiply every config's batch (GPU runs)")
    p.add_argument("--batch", type=int, default=None, help="every config at this batch instead")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    rows, figures = [], {"torch": torch.__version__, "threads": torch.get_num_threads(), "device": str(device)}
    if device.type == "cuda":
        figures["gpu"] = torch.cuda.get_device_name()
    for name in args.configs:
        r, f = run_config(name, args, device)
        rows += r
        figures.update(f)
    print(f"{'config':<20}{'impl':<10}{'s/step':>10}{'images/s':>11}{'TFLOP/s':>9}{'vs peer':>9}{'vs floor_cl':>12}")
    for name, impl, s, ips, tflops in rows:
        peer = figures.get(f"{name}_byol_vs_lightly") if impl == "byol" else None
        floor = figures.get(f"{name}_byol_vs_floor_cl") if impl == "byol" else None
        cells = [f"{peer:.2f}x" if peer else "", f"{floor:.2f}x" if floor else ""]
        print(f"{name:<20}{impl:<10}{s:>10.3f}{ips:>11.0f}{tflops:>9.3f}{cells[0]:>9}{cells[1]:>12}")
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in figures.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

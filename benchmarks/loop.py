"""Where the time of the real ``byol pretrain`` loop goes, part by part.

One run is built as ``byol pretrain`` builds it (``build_run``, ``start_state``), compiled and warmed
up once, then ``train_loop`` itself runs three times over ``--steps`` steps each:

- ``bare``: no hooks: data, views, the step and the target update, as fast as they overlap;
- ``full``: the hooks ``byol pretrain`` runs (metrics, time budget, kNN monitor, checkpoints);
- ``parts``: the same hooks, with every part timed alone (the device synchronised before and after
  each, so nothing overlaps and the parts add up): the batch from the data, the two views, the step,
  the target update, and each hook. The kNN monitor runs every epoch in this pass, to time it.

    python benchmarks/loop.py [--data ../shared/data/cifar10/train] [--preset cpu] [--steps 60]
    python benchmarks/loop.py --device cuda --preset cifar10 --batch 512 --compile --steps 300

Prints a table, then one JSON line: images/s of ``bare`` and ``full``, their ratio, and the
milliseconds per call and share of each part.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "cifar10" / "train"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class StopAfter:
    """A hook that ends ``train_loop`` after ``steps`` more steps."""

    def __init__(self, state, steps: int):
        self.until = state.step + steps

    def after_step(self, event):
        from byol.train.state import Stop

        return Stop("the benchmark's steps are done") if event.step >= self.until else None

    def close(self) -> None:
        pass


class Parts:
    """Seconds per named part, each timed with the device synchronised around it."""

    def __init__(self, device: torch.device):
        self.device, self.seconds, self.calls = device, defaultdict(float), defaultdict(int)
        self.longest = defaultdict(float)

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] += seconds
        self.calls[name] += 1
        self.longest[name] = max(self.longest[name], seconds)

    def timed(self, name: str, fn):
        def wrapper(*args, **kwargs):
            sync(self.device)
            t0 = time.perf_counter()
            out = fn(*args, **kwargs)
            sync(self.device)
            self.add(name, time.perf_counter() - t0)
            return out

        return wrapper

    def timed_iter(self, name: str, iterator):
        iterator = iter(iterator)
        while True:
            sync(self.device)
            t0 = time.perf_counter()
            try:
                item = next(iterator)
            except StopIteration:
                return
            self.add(name, time.perf_counter() - t0)
            yield item


class TimedHook:
    def __init__(self, hook, parts: Parts):
        self.hook, self.after_step = hook, parts.timed(type(hook).__name__, hook.after_step)
        self.name, self.runs_after = type(hook).__name__, hook.runs_after  # its place in the order: the hook's

    def close(self) -> None:
        self.hook.close()


def timed_pass(run, state, hooks, steps: int) -> float:
    """Seconds of ``train_loop`` over ``steps`` steps with ``hooks``."""
    from byol.train.loop import train_loop

    state.stop = None  # each pass runs its own steps
    sync(run.device)
    t0 = time.perf_counter()
    train_loop(run, state, [*hooks, StopAfter(state, steps)])
    sync(run.device)
    return time.perf_counter() - t0


def parts_pass(run, state, steps: int) -> tuple[float, Parts]:
    """``train_loop`` with every part timed alone (monkeypatched names of ``byol.train.loop``)."""
    import byol.train.loop as loop
    from byol.train.hooks import default_hooks

    parts = Parts(run.device)
    saved = (loop.step_batches, loop.make_views, loop.train_step, run.method.after_step)
    loop.step_batches = lambda r, s: parts.timed_iter("data (batch)", saved[0](r, s))
    loop.make_views = parts.timed("views (augment)", saved[1])
    loop.train_step = parts.timed("step (fwd+bwd+opt)", saved[2])
    run.method.after_step = parts.timed("target update", saved[3])
    knn_every = run.cfg.run.knn_every
    run.cfg.run.knn_every = 1.0 if knn_every > 0 else 0.0
    try:
        hooks = [TimedHook(h, parts) for h in default_hooks(run, state, progress=False)]
        seconds = timed_pass(run, state, hooks, steps)
    finally:
        loop.step_batches, loop.make_views, loop.train_step = saved[:3]
        del run.method.after_step
        run.cfg.run.knn_every = knn_every
    return seconds, parts


def config(args):
    from byol.cli.common import nested, parse_assignment
    from byol.config.io import merge
    from byol.config.presets import resolve

    optim = {"batch_size": args.batch} if args.batch else {}
    run = {"time_budget": None, "epochs": 1000, "device": args.device, "log_every": args.log_every}
    run["compile"] = bool(args.compile)
    overrides = {"data": {"path": str(args.data)}, "optim": optim, "run": run}
    for item in args.set:
        overrides = merge(overrides, nested(*parse_assignment(item)))
    return resolve(args.preset, overrides)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--preset", default="cpu")
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch", type=int, default=0, help="batch size (0: the preset's)")
    p.add_argument("--steps", type=int, default=60, help="timed steps per pass")
    p.add_argument("--warmup", type=int, default=10, help="untimed steps first (compilation, caches)")
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument("--compile", action="store_true")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="any config value, as pretrain's")
    args = p.parse_args(argv)

    from byol.device import resolve_device
    from byol.dist import init_distributed, shutdown_distributed
    from byol.train.hooks import default_hooks
    from byol.train.setup import build_run
    from byol.train.state import start_state

    cfg = config(args)
    device = resolve_device(cfg.run.device)
    info = init_distributed(device.type)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            run = build_run(cfg, Path(tmp) / "run", False, device, info)
            state = start_state(run, False)
            timed_pass(run, state, [], args.warmup)
            bare = timed_pass(run, state, [], args.steps)
            full = timed_pass(run, state, default_hooks(run, state, progress=False), args.steps)
            seconds, parts = parts_pass(run, state, args.steps)
    finally:
        shutdown_distributed(info)

    images = args.steps * run.images_per_step
    total = sum(parts.seconds.values())
    rows = sorted(parts.seconds, key=parts.seconds.get, reverse=True)
    print(f"{'pass / part':<26}{'calls':>7}{'ms/call':>10}{'share':>8}{'max ms':>10}")
    for label, secs in (("bare loop", bare), ("full loop (all hooks)", full)):
        print(f"{label:<26}{args.steps:>7}{1000 * secs / args.steps:>10.2f}{'':>18}   {images / secs:,.0f} img/s")
    print(f"{'parts, timed alone':<26}{args.steps:>7}{1000 * seconds / args.steps:>10.2f}")
    for name in rows:
        n, secs, longest = parts.calls[name], parts.seconds[name], parts.longest[name]
        print(f"  {name:<24}{n:>7}{1000 * secs / n:>10.2f}{secs / total:>8.1%}{1000 * longest:>10.1f}")
    print(
        json.dumps(
            {
                "device": str(device),
                "gpu": torch.cuda.get_device_name() if device.type == "cuda" else None,
                "torch": torch.__version__,
                "preset": args.preset,
                "batch": run.images_per_step,
                "compile": args.compile,
                "optimizer": cfg.optim.optimizer,
                "compiled_step": cfg.optim.compiled_step,
                "steps": args.steps,
                "bare_images_per_sec": round(images / bare, 1),
                "full_images_per_sec": round(images / full, 1),
                "full_vs_bare": round(bare / full, 4),
                "parts_ms_per_call": {k: round(1000 * parts.seconds[k] / parts.calls[k], 3) for k in rows},
                "parts_calls": {k: parts.calls[k] for k in rows},
                "parts_max_ms": {k: round(1000 * parts.longest[k], 1) for k in rows},
                "parts_share": {k: round(parts.seconds[k] / total, 4) for k in rows},
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""fp32 against bf16 autocast for the training step on this CPU: what ``run.precision: auto`` should pick.

The real step of ``byol pretrain`` (``step.byol_step``: the preset's model, optimiser and memory format)
on fixed random views, once in fp32 and once under bf16 autocast, interleaved per repeat, after warm-up.
``auto`` picks bf16 where PyTorch reports bf16 matrix units (AMX, AVX-512 BF16: ``byol.device.cpu_bf16_units``);
this says whether that holds on the host it runs on.

    python benchmarks/precision.py [--configs convnet_32px r18w025_32px] [--repeats 6] [--steps 2]

Prints a table (median seconds per step, images/s), then one JSON line: the CPU's name and bf16 units,
``<config>_fp32_s``, ``<config>_bf16_s`` and ``<config>_bf16_speedup`` (fp32 seconds / bf16 seconds at
the config's batch, the median of the per-repeat ratios: > 1 means bf16 is faster), and what ``auto``
chooses for that config (``<config>_auto``, ``<config>_auto_reason``: ``byol pretrain``'s start-up probe,
``byol.train.precision_probe``, of 32 images).
"""

from __future__ import annotations

import argparse
import json
import statistics

import step  # benchmarks/ is on the path: this file runs as a script, or a test puts it there
import torch

from byol import build
from byol.config.presets import resolve
from byol.device import DevicePolicy, cpu_bf16_units, cpu_name
from byol.dist import DistInfo
from byol.train.memory import MemoryProbe
from byol.train.precision_probe import measured_precision
from byol.train.setup import PRECISION_PROBE_IMAGES, build_model

DEFAULT_CONFIGS = ["convnet_32px", "r18w025_32px"]


def run_config(config: str, repeats: int, steps: int, warmup: int, batch: int | None) -> tuple[list, dict]:
    preset, overrides, default_batch = step.CONFIGS[config]
    batch = batch or default_batch
    name = f"{config}_b{batch}"
    device = torch.device("cpu")
    g = torch.Generator().manual_seed(0)
    steps_by_precision = {}
    for precision in ("fp32", "bf16"):
        cfg = resolve(preset, {**overrides, "optim": {"batch_size": batch}, "run": {"precision": precision}})
        size = cfg.data.image_size
        views = tuple(torch.randn(batch, 3, size, size, generator=g) for _ in range(2))
        torch.manual_seed(0)
        steps_by_precision[precision] = step.byol_step(cfg, device, views)
    for fn in steps_by_precision.values():
        step.time_steps(fn, device, warmup)
    runs: dict[str, list[float]] = {k: [] for k in steps_by_precision}
    for _ in range(repeats):
        for k, fn in steps_by_precision.items():
            runs[k].append(statistics.median(step.time_steps(fn, device, steps)))
    ratios = [f / b for f, b in zip(runs["fp32"], runs["bf16"])]
    auto = probe_choice(preset, overrides, batch)
    figures = {f"{name}_{k}_s": statistics.median(v) for k, v in runs.items()}
    figures[f"{name}_bf16_speedup"] = statistics.median(ratios)
    figures[f"{name}_bf16_speedup_range"] = [min(ratios), max(ratios)]
    figures[f"{name}_auto"], figures[f"{name}_auto_reason"] = auto.precision, auto.precision_reason
    rows = [(name, k, statistics.median(v), batch / statistics.median(v)) for k, v in runs.items()]
    return rows, figures


def probe_choice(preset: str, overrides: dict, batch: int) -> DevicePolicy:
    """What ``run.precision: auto`` chooses for this config at the start of ``byol pretrain``."""
    cfg = resolve(preset, {**overrides, "optim": {"batch_size": batch}, "run": {"precision": "auto"}})
    policy = DevicePolicy.resolve(torch.device("cpu"), "auto", cfg.run.channels_last)
    method, _, _, _ = build_model(cfg, policy, DistInfo())
    augment = build.augmentation(cfg, compile=False).eager()
    micro = min(batch, PRECISION_PROBE_IMAGES)
    probe = lambda p: MemoryProbe(method, augment, cfg.data.image_size, p).timed_pass(micro)  # noqa: E731
    return measured_precision(policy, "auto", probe, DistInfo())[0]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--configs", nargs="+", default=DEFAULT_CONFIGS, choices=list(step.CONFIGS))
    p.add_argument("--repeats", type=int, default=6)
    p.add_argument("--steps", type=int, default=2, help="timed steps per precision and repeat (median)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--batch", type=int, default=None, help="every config at this batch instead of its own")
    args = p.parse_args(argv)
    figures = {
        "cpu": cpu_name(),
        "bf16_units": cpu_bf16_units(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
    cpu, threads, units = figures["cpu"], figures["threads"], figures["bf16_units"]
    print(f"# {cpu}, {threads} threads, torch {figures['torch']}, bf16 units: {units}")
    print(f"{'config':<22}{'precision':>10}{'s/step':>10}{'images/s':>10}")
    for config in args.configs:
        rows, figs = run_config(config, args.repeats, args.steps, args.warmup, args.batch)
        for name, precision, s, ips in rows:
            print(f"{name:<22}{precision:>10}{s:>10.3f}{ips:>10.0f}")
        name = rows[0][0]
        print(f"{'':<22}{'bf16 ×':>10}{figs[f'{name}_bf16_speedup']:>10.2f}  auto: {figs[f'{name}_auto_reason']}")
        figures.update(figs)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

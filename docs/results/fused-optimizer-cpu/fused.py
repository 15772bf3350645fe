"""One optimiser step over the demo's model (the cpu preset with byol.demo.DEMO_RECIPE: online encoder,
projector and predictor, 1.94 M parameters, random gradients), PyTorch's three implementations of
AdamW and SGD (the for-loop, foreach and fused kernels), 30 interleaved rounds after 3 warm-up steps,
median milliseconds. Run: .venv/bin/python docs/results/fused-optimizer-cpu/fused.py
"""

import json
import statistics
import time

import torch

from byol.config.io import merge
from byol.demo import DEMO_RECIPE
from byol.device import DevicePolicy, cpu_name
from byol.dist import DistInfo
from byol.optim import param_groups
from byol.config.presets import resolve
from byol.train.setup import build_model

cfg = resolve("cpu", merge(DEMO_RECIPE, {"data": {"path": "unused"}}))
method = build_model(cfg, DevicePolicy.resolve(torch.device("cpu"), "fp32", True), DistInfo())[0]
modules = method.trained_modules()
for p in (p for m in modules for p in m.parameters()):
    p.grad = torch.randn_like(p)
makers = {
    "adamw": lambda **kw: torch.optim.AdamW(param_groups(modules, 1e-4), lr=3e-3, weight_decay=1e-4, **kw),
    "sgd": lambda **kw: torch.optim.SGD(param_groups(modules, 1e-4), lr=0.1, momentum=0.9, weight_decay=1e-4, **kw),
}
kinds = {"for-loop": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}
figures = {"cpu": cpu_name(), "torch": torch.__version__, "threads": torch.get_num_threads()}
print(f"# {figures['cpu']}, torch {figures['torch']}, {figures['threads']} threads")
for name, make in makers.items():
    opts = {kind: make(**kw) for kind, kw in kinds.items()}
    for opt in opts.values():
        for _ in range(3):
            opt.step()
    times = {kind: [] for kind in opts}
    for _ in range(30):
        for kind, opt in opts.items():
            t0 = time.perf_counter()
            opt.step()
            times[kind].append(time.perf_counter() - t0)
    for kind, values in times.items():
        figures[f"{name}_{kind}_ms"] = round(1000 * statistics.median(values), 3)
        print(f"{name:<6}{kind:<10}{figures[f'{name}_{kind}_ms']:>8.2f} ms")
    figures[f"{name}_fused_vs_foreach"] = round(figures[f"{name}_foreach_ms"] / figures[f"{name}_fused_ms"], 2)
print(json.dumps(figures))

# Images/s of the real cpu-preset step at batch 256, 128, 64 (fixed random views, fp32, interleaved).
# Run from the repository root: .venv/bin/python docs/results/cpu-preset-2026-12-06/batch_speed.py
import sys, statistics, torch
sys.path.insert(0, "benchmarks")
import step as S
from byol.config.presets import resolve
dev = torch.device("cpu")
fns = {}
for name, b in (("b256", 256), ("b128", 128), ("b64", 64)):
    g = torch.Generator().manual_seed(0)
    views = tuple(torch.randn(b, 3, 32, 32, generator=g) for _ in range(2))
    cfg = resolve("cpu", {"optim": {"batch_size": b}, "run": {"precision": "fp32"}})
    fns[name] = (S.byol_step(cfg, dev, views), b)
for f, b in fns.values(): S.time_steps(f, dev, 3)
runs = {k: [] for k in fns}
for _ in range(5):
    for k, (f, b) in fns.items(): runs[k].append(b / statistics.median(S.time_steps(f, dev, 4)))
for k, v in runs.items(): print(k, "images/s", round(statistics.median(v)))
for k in ("b128", "b64"):
    print(k + "/b256 images/s", round(statistics.median([a / b for a, b in zip(runs[k], runs["b256"])]), 3))

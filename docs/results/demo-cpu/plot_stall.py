"""The lr against the training clock of the undisturbed and the stalled demo of 2026-12-07 (issue 41).

    cd docs/results/demo-cpu && ../../../.venv/bin/python plot_stall.py demo-metrics-2026-12-07.jsonl \
        demo-stall-metrics-2026-12-07.jsonl  # -> stall-2026-12-07.png (a run folder's metrics.jsonl)
"""

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

fig, ax = plt.subplots(figsize=(6.4, 3.2), dpi=100)
for run, label in zip(sys.argv[1:3], ("undisturbed: 58.23%", "3-minute stall at minute 3: 56.43%")):
    path = Path(run) / "metrics.jsonl" if Path(run).is_dir() else Path(run)
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    rows = [r for r in rows if "lr" in r]
    xs, ys = [], []
    for r in rows:
        if xs and r["elapsed"] / 60 - xs[-1] > 0.5:  # no steps in the stall: no line across it
            xs.append(float("nan")), ys.append(float("nan"))
        xs.append(r["elapsed"] / 60), ys.append(r["lr"])
    ax.plot(xs, ys, label=label)
ax.set_xlabel("minutes of the 10-minute budget")
ax.set_ylabel("lr")
ax.set_title("make demo, cpu preset, 2-core Xeon, fp32")
ax.legend(fontsize=8)
fig.tight_layout()
fig.savefig(Path(__file__).with_name("stall-2026-12-07.png"))

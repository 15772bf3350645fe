"""The fine-tuning table of README.md from results.jsonl (run.py's lines): per fraction, each start's
top-1 per seed, mean ± std, the choice each made, and the pretrained start's lead per seed.

    .venv/bin/python docs/results/finetune-cpu/table.py docs/results/finetune-cpu/results.jsonl
"""

import json
import statistics
import sys

with open(sys.argv[1]) as f:
    rows = [json.loads(line) for line in f]


def pct(values):
    mean = statistics.mean(values)
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * mean:.1f} ± {100 * sd:.1f}"


by = {(r["label_fraction"], r["start"], r["seed"]): r for r in rows}
print("| labels | encoder | fine-tuned top-1 (seeds 0, 1, 2) | mean ± std | chosen (head, lr) | linear probe |")
print("|---|---|---|---:|---|---:|")
for fraction in sorted({r["label_fraction"] for r in rows}):
    for start in ("pretrained", "untrained"):
        runs = [by[k] for k in sorted(by) if k[0] == fraction and k[1] == start]
        if not runs:
            continue
        top = [r["top1"] for r in runs]
        chosen = ", ".join(f"{r['head_start']} {r['lr']:g}" for r in runs)
        lin = [r["linear_top1"] for r in runs]
        print(
            f"| {fraction:.0%} ({runs[0]['labelled_images']:,} images) | {start} | "
            f"{' / '.join(f'{100 * t:.1f}' for t in top)} | {pct(top)} | {chosen} | {pct(lin)} |"
        )
print()
for fraction in sorted({r["label_fraction"] for r in rows}):
    seeds = sorted(s for f, st, s in by if f == fraction and st == "pretrained" and (f, "untrained", s) in by)
    lead = [by[(fraction, "pretrained", s)]["top1"] - by[(fraction, "untrained", s)]["top1"] for s in seeds]
    ft_vs_lin = [
        by[(fraction, "pretrained", s)]["top1"] - by[(fraction, "pretrained", s)]["linear_top1"] for s in seeds
    ]
    if lead:
        print(
            f"{fraction:.0%}: pretrained − untrained per seed {', '.join(f'{100 * d:+.1f}' for d in lead)} "
            f"(mean {pct(lead)}); pretrained fine-tuned − its linear probe "
            f"{', '.join(f'{100 * d:+.1f}' for d in ft_vs_lin)}"
        )

"""The page's table: each re-run seed beside the first sitting's row for the same variant and seed
(docs/results/ablations/2026-11-30.json), from the run folders' own files."""
import json
import sys
from pathlib import Path

page = Path(sys.argv[1])
first = json.loads(Path("docs/results/ablations/2026-11-30.json").read_text())["variants"]
print("| variant | seed | kNN now | first sitting | now − first | its untrained (now / first) | top-direction share now | precision, images/s |")
print("|---|---:|---:|---:|---:|---|---:|---|")
diffs = []
for run in sorted(page.glob("runs/*/seed*")):
    name, seed = run.parent.name, run.name.removeprefix("seed")
    e = json.loads((run / "ablation_eval.json").read_text())
    s = json.loads((run / "summary.json").read_text())
    o = first.get(name, {}).get("seeds", {}).get(seed, {})
    now, then = 100 * e["knn_top1"], 100 * o["knn_top1"] if o.get("knn_top1") is not None else None
    d = None if then is None else now - then
    if d is not None:
        diffs.append(d)
    un = f"{100 * e['untrained_top1']:.2f} / {100 * o['untrained_top1']:.2f}" if o.get("untrained_top1") else f"{100 * e['untrained_top1']:.2f} / —"
    print(f"| {name} | {seed} | {now:.2f} | {'—' if then is None else f'{then:.2f}'} | {'—' if d is None else f'{d:+.2f}'} | {un} | {e['top_share']:.2f} | {s['precision']}, {s['images_per_sec']:,.0f} |")
if diffs:
    m = sum(diffs) / len(diffs)
    print(f"\nnow − first over {len(diffs)} runs: mean {m:+.2f}, mean |·| {sum(abs(x) for x in diffs) / len(diffs):.2f}, max |·| {max(abs(x) for x in diffs):.2f}")

"""The page's table: each re-run seed beside the first sitting's row for the same variant and seed
(docs/results/ablations/2026-11-30.json), from the run folders' own files. The host: the summary's CPU, vector
and bf16 units where it names them (since dff8a3a); before, the precision's reason tells the two hosts apart
(both summaries say only "AMD EPYC"): the first sitting's Zen 4 trained bf16 (asked for, or auto's choice
for its AVX-512 BF16), the second sitting's Zen 3 fp32 (auto: no bf16 unit)."""
import json
import sys
from pathlib import Path


def host(s: dict) -> str:
    if "cpu_bf16" in s:  # the summary says it itself (since dff8a3a)
        return f"{s.get('cpu') or 'CPU'}, {s['cpu_capability']}, {s['cpu_bf16'] or 'no bf16 unit'}"
    reason = s["precision_reason"]
    if "no bf16 matrix units" in reason:  # auto's fp32: the second sitting's host
        return "AMD EPYC Zen 3, AVX2, no bf16 unit"
    if reason == "bf16: run.precision=bf16" or "AVX-512 BF16" in reason:  # the first sitting's host
        return "AMD EPYC Zen 4, AVX-512 BF16"
    raise ValueError(f"no host known for a run whose precision reason is {reason!r}")


page = Path(sys.argv[1])
first = json.loads(Path("docs/results/ablations/2026-11-30.json").read_text())["variants"]
print("| variant | seed | kNN now | first sitting | now − first | its untrained (now / first) | top-direction share now | precision, images/s | host |")
print("|---|---:|---:|---:|---:|---|---:|---|---|")
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
    print(f"| {name} | {seed} | {now:.2f} | {'—' if then is None else f'{then:.2f}'} | {'—' if d is None else f'{d:+.2f}'} | {un} | {e['top_share']:.2f} | {s['precision']}, {s['images_per_sec']:,.0f} | {host(s)} |")
if diffs:
    m = sum(diffs) / len(diffs)
    print(f"\nnow − first over {len(diffs)} runs: mean {m:+.2f}, mean |·| {sum(abs(x) for x in diffs) / len(diffs):.2f}, max |·| {max(abs(x) for x in diffs):.2f}")

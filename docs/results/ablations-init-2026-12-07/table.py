"""The init page's table: per seed, each variant's kNN, its untrained encoder's, and the default start's (no_norm_lars),
from the run folders (the page's runs/ and the pages its references come from)."""
import json
from pathlib import Path

R = Path("docs/results")
page = R / "ablations-init-2026-12-07"
where = {"no_norm_lars": R / "ablations-missing-2026-12-07", "lars": R / "ablations-tau0-lars-10ep"}
print("| variant | kNN, seeds 0 / 1 / 2 | its untrained | − default start (no_norm_lars), by seed | top-direction share, projection rank (end) | precision, images/s |")
print("|---|---|---|---|---|---|")
names = ("lars", "no_norm_lars", "no_norm_lars_mimic", "no_norm_lars_mimic_all")
run = lambda name, s, f: json.loads((where.get(name, page) / "runs" / name / f"seed{s}" / f).read_text())  # noqa: E731
rows = {name: [run(name, s, "ablation_eval.json") for s in range(3)] for name in names}
for name in names:
    sums = [run(name, s, "summary.json") for s in range(3)]
    knn = [100 * r["knn_top1"] for r in rows[name]]
    mean = sum(knn) / 3
    std = (sum((k - mean) ** 2 for k in knn) / 2) ** 0.5
    un = " / ".join(f"{100 * r['untrained_top1']:.2f}" for r in rows[name])
    over = " / ".join(f"{100 * (a['knn_top1'] - b['knn_top1']):+.2f}" for a, b in zip(rows[name], rows["no_norm_lars"]))
    geo = ", ".join(f"{r['top_share']:.2f} / {r['projection_rank']:.1f}" for r in rows[name])
    pr = ", ".join(sorted({s["precision"] for s in sums})) + ", " + " / ".join(f"{s['images_per_sec']:,.0f}" for s in sums)
    print(f"| {name} | {' / '.join(f'{k:.2f}' for k in knn)} ({mean:.1f} ± {std:.1f}) | {un} | {over if name != 'no_norm_lars' else '—'} | {geo} | {pr} |")

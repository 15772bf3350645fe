"""How similar copies and distinct images are in an encoder's embedding, and what the automatic
duplicate threshold (``byol.eval.search.duplicate_threshold``) makes of it.

A folder of ``--per-class`` CIFAR-10 test images a class with two copies of the first ``--copies`` of
each (``tests/test_neighbours.planted_copies``: enlarged to 64 px as JPEG quality 90, to 40 px as PNG)
is embedded by each encoder given; for each: the least similar planted pair, the most similar pair of
distinct images, the automatic threshold, and how many planted and distinct pairs it reports.

    python benchmarks/duplicates.py RUN [RUN ...] [--cifar ../shared/data/cifar10] [--out DIR]

Prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from test_neighbours import planted_copies  # noqa: E402

from byol.eval.embeddings import embed_folder  # noqa: E402
from byol.eval.search import near_duplicates  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+")
    p.add_argument("--cifar", default=str(ROOT.parent / "shared" / "data" / "cifar10"))
    p.add_argument("--per-class", type=int, default=20)
    p.add_argument("--copies", type=int, default=2)
    args = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder, planted = planted_copies(Path(args.cifar), Path(tmp) / "data", args.per_class, args.copies)
        for run in args.runs:
            emb = embed_folder(run, str(folder), torch.device("cpu"), workers=0, progress=False)
            every, _ = near_duplicates(emb.vectors, threshold=-1.0, k=20)  # every pair among 20 neighbours
            sims = {frozenset((emb.paths[i], emb.paths[j])): s for i, j, s in every}
            planted_sims = [sims.get(frozenset(pair), -1.0) for pair in planted]  # -1: not among the 20 nearest
            distinct = [s for pair, s in sims.items() if set(pair) not in planted]
            found, threshold = near_duplicates(emb.vectors)
            pairs = [{emb.paths[i], emb.paths[j]} for i, j, _ in found]
            rows.append({
                "run": run, "images": len(emb.paths), "planted_pairs": len(planted),
                "planted_min": min(planted_sims), "distinct_max": max(distinct), "auto_threshold": threshold,
                "planted_found": sum(p in pairs for p in planted),
                "distinct_found": sum(p not in planted for p in pairs),
            })  # fmt: skip
    print(f"{'run':<42}{'planted min':>12}{'distinct max':>13}{'auto':>8}{'planted found':>15}{'false pairs':>12}")
    for r in rows:
        print(
            f"{r['run'][-42:]:<42}{r['planted_min']:>12.4f}{r['distinct_max']:>13.4f}{r['auto_threshold']:>8.4f}"
            f"{r['planted_found']:>9}/{r['planted_pairs']:<5}{r['distinct_found']:>12}"
        )
    print(json.dumps({"benchmark": "duplicates", **vars(args), "rows": rows}))


if __name__ == "__main__":
    main()

"""Nearest-neighbour search over a large bank: the faiss index ``byol neighbours`` uses for banks of
millions against the exact search on the torch side, on the same bank and queries.

A bank of ``--bank`` unit vectors of ``--dim``: ``--data clustered`` (the default; as embeddings are:
points around ``--clusters`` random centres) or ``random`` (isotropic: the hardest case for an inverted
file, nothing to find); ``--queries`` queries drawn alike, ``--k`` neighbours. For each backend: seconds to build
(faiss: k-means training and adding) and to search, the process's peak resident memory after it, and
the index's recall@k against the exact search (the share of the exact k neighbours it returns).

    python benchmarks/search.py [--data clustered|random] [--bank 1000000] [--dim 512] [--queries 1000]
        [--k 10] [--nprobe 8 32 250]

Prints a table, then one JSON line with every figure and the speed-ups over the torch search.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from byol.eval.search import build_index, exact_search  # noqa: E402


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bank", type=int, default=1_000_000)
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--nprobe", type=int, nargs="+", default=[8, 32, 250], help="32: byol's default")
    p.add_argument("--data", choices=("clustered", "random"), default="clustered")
    p.add_argument("--clusters", type=int, default=2000)
    args = p.parse_args()

    g = torch.Generator().manual_seed(0)
    centres = F.normalize(torch.randn(args.clusters, args.dim, generator=g), dim=1)

    def draw(n: int) -> torch.Tensor:
        if args.data == "random":
            return F.normalize(torch.randn(n, args.dim, generator=g), dim=1)
        around = centres[torch.randint(args.clusters, (n,), generator=g)]
        return F.normalize(around + torch.randn(n, args.dim, generator=g) / args.dim**0.5, dim=1)

    bank, queries = draw(args.bank), draw(args.queries)
    rows = [{"backend": "bank in memory", "peak_mib": peak_mib()}]

    start = time.perf_counter()
    exact_s, exact_i = exact_search(queries, bank, args.k)
    rows.append({"backend": "torch (exact)", "build_s": 0.0, "search_s": time.perf_counter() - start,
                 "recall": 1.0, "peak_mib": peak_mib()})  # fmt: skip

    start = time.perf_counter()
    index = build_index(bank)
    build = time.perf_counter() - start
    for nprobe in args.nprobe:
        index.nprobe = nprobe
        start = time.perf_counter()
        _, found = index.search(queries.numpy(), args.k)
        search = time.perf_counter() - start
        hits = sum(len(set(a) & set(b)) for a, b in zip(found.tolist(), exact_i.tolist()))
        rows.append({"backend": f"faiss IVF, {index.nlist} cells, nprobe {nprobe}", "build_s": build,
                     "search_s": search, "recall": hits / exact_i.numel(), "peak_mib": peak_mib()})  # fmt: skip

    torch_search = rows[1]["search_s"]
    print(f"{args.data} bank {args.bank:,} × {args.dim}, {args.queries:,} queries, k {args.k}, "
          f"{torch.get_num_threads()} threads")  # fmt: skip
    print(f"{'backend':<40}{'build s':>9}{'search s':>10}{'recall@k':>10}{'peak MiB':>10}")
    for r in rows:
        figures = f"{r['build_s']:>9.1f}{r['search_s']:>10.2f}{r['recall']:>10.3f}" if "search_s" in r else " " * 29
        print(f"{r['backend']:<40}{figures}{r['peak_mib']:>10,.0f}")
    for r in rows[2:]:
        r["speedup_over_exact"] = torch_search / r["search_s"]
    print(json.dumps({"benchmark": "search", **vars(args), "rows": rows}))


if __name__ == "__main__":
    main()

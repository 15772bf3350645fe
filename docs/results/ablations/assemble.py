"""Assemble this page from its two sittings, then write the report (issue 32).

    python docs/results/ablations/assemble.py RUN_DIR

RUN_DIR is the 2026-12-05 `byol ablate --out` folder (the τ arms and the batch claims, every run folder
kept); `2026-11-30.json` is the first sitting's `ablations.json` as it was written (its run folders were
not kept). A variant run in both sittings is taken from RUN_DIR (the baseline and SimCLR gave the same
kNN to the digit in both: the runs repeat from their seeds); the first sitting's τ arms, which
`--scale-tau` had turned into τ_base 0, 0.52 and 0.95, give way to the real arms. Each run's
config.yaml, metrics.jsonl, summary.json and ablation_eval.json are copied to runs/<variant>/seed<N>/
(no checkpoints, no encoders); then `byol ablate --report-only` writes ablations.md, ablations.json's
claims and the plots from the merged results, the same bytes as the committed ones.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from byol.ablate import AblationRunner
from byol.ablate.runner import results_json
from byol.ablate.variants import SUITES
from byol.config.presets import resolve

PAGE = Path(__file__).resolve().parent
KEPT = ("config.yaml", "metrics.jsonl", "summary.json", "ablation_eval.json")
CACHES = ("untrained_by_architecture", "bn_adapted_by_architecture")


def assemble(run_dir: Path) -> dict:
    first = json.loads((PAGE / "2026-11-30.json").read_text())
    second = json.loads((run_dir / "ablations.json").read_text())
    variants = {**first["variants"], **second["variants"]}  # the second sitting's runs win
    order = dict.fromkeys([*SUITES["claims"], *SUITES["batch"], *sorted(variants)])  # the claims' variants first
    setup = {**second["setup"], "probe_epochs": first["setup"]["probe_epochs"]}  # the probes ran in the first
    merged = {"setup": setup, "variants": {name: variants[name] for name in order if name in variants}}
    for cache in CACHES:  # kNN of the untrained encoders, by architecture and seed: the same in both sittings
        merged[cache] = {}
        for part in (first, second):
            for key, seeds in part.get(cache, {}).items():
                merged[cache].setdefault(key, {}).update(seeds)
    shutil.rmtree(PAGE / "runs", ignore_errors=True)
    for name, entry in second["variants"].items():
        for seed in entry["seeds"]:
            src, dst = run_dir / name / f"seed{seed}", PAGE / "runs" / name / f"seed{seed}"
            dst.mkdir(parents=True)
            for file in KEPT:
                shutil.copy2(src / file, dst / file)
    return merged


if __name__ == "__main__":
    results = assemble(Path(sys.argv[1]))
    (PAGE / "ablations.json").write_text(results_json(results))
    AblationRunner(resolve("cpu", {}), PAGE, None).report()

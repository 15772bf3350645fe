"""Build the claims page from kept run folders only (issue 44), once the first sitting's re-run is complete.

    python docs/results/ablations/build.py              # this page: runs/, ablations.json, .md, plots
    python docs/results/ablations/build.py --into DIR --partial   # a dry fold: a copy of this page in DIR

Each variant the claims or the report read is taken from one page's ``runs/<variant>/seed<N>/`` (``SOURCES``:
the page whose runs pair with the claim's other variants), its four files copied into this page's
``runs/``; ablations.json is then written from those folders alone (no row without a folder, no
2026-11-30 row), and ``byol ablate --report-only`` writes the claims, the table and the plots from it.
Without ``--partial`` a variant short of the suite's three seeds stops the build, naming it: a claim
read on fewer seeds than planned is inconclusive at most, so a partial fold is for looking, not for
publishing.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from byol.ablate import AblationRunner
from byol.ablate.runner import EVAL_FILE, RESULTS_JSON, results_json
from byol.config.presets import resolve

PAGE = Path(__file__).resolve().parent
RESULTS = PAGE.parent
KEPT = ("config.yaml", "metrics.jsonl", "summary.json", "ablation_eval.json")
SEEDS = ("0", "1", "2")

# variant: the page (under docs/results/) whose runs the table reads. One page a variant, chosen so that a
# claim's variant and its reference come from one sitting where they can: lars and its 10-epoch τ = 0 (the
# confound-free reading issue 44 asked for; the 2-epoch probe stays on the first sitting's page) are the runs
# the BatchNorm-free, faster-predictor and mimicking pages read beside. Pairs that cross sittings: heads_none_lars
# (first sitting) against that lars, and every variant against the 2026-12-05 baseline and SimCLR (AMX Xeon,
# bf16); the first sitting's own lars and tau_0_lars stay on its page (now against first, no claim reads them).
SOURCES = {
    **dict.fromkeys(
        ["baseline", "simclr", "tau_0.9", "tau_0.99", "tau_0.999", "batch_1024_real", "simclr_batch_1024_real",
         "batch_256_of_1024", "simclr_batch_256_of_1024", "batch_64", "simclr_batch_64", "batch_64_real",
         "simclr_batch_64_real"],
        "ablations",
    ),  # 2026-12-05, AMX Xeon, bf16
    **dict.fromkeys(
        ["no_predictor", "tau_0", "tau_1", "heads_none_sgd", "heads_none_lars", "heads_layernorm", "encoder_gn_ws",
         "encoder_gn_ws_mimic", "no_color", "simclr_no_color", "batch_32", "simclr_batch_32"],
        "ablations-first-sitting",
    ),  # 2026-12-07/08, AMD EPYC Zen 4 (bf16) and Zen 3 (fp32)
    **dict.fromkeys(["lars", "tau_0_lars"], "ablations-tau0-lars-10ep"),
    **dict.fromkeys(["heads_none", "no_norm_lars", "crop_only", "simclr_crop_only"], "ablations-missing-2026-12-07"),
    **dict.fromkeys(["tau_0_predictor_lr_lars", "projector_output_bn"], "ablations-details-2026-12-07"),
    **dict.fromkeys(["no_norm_lars_mimic", "no_norm_lars_mimic_all"], "ablations-init-2026-12-07"),
}  # fmt: skip


def missing_seeds() -> dict[str, list[str]]:
    """Per variant, the seeds its source page has no scored run folder for."""
    missing = {}
    for name, page in SOURCES.items():
        lost = [s for s in SEEDS if not (RESULTS / page / "runs" / name / f"seed{s}" / EVAL_FILE).exists()]
        if lost:
            missing[name] = lost
    return missing


def build(into: Path, partial: bool = False) -> dict:
    """``into``'s runs/ made the sources' folders, its ablations.json their rows alone, then the report."""
    if into != PAGE and (into == RESULTS or RESULTS in into.parents or into in RESULTS.parents):
        sys.exit(f"build.py: --into {into}: a dry fold goes outside docs/results (say /tmp/fold), never over a page")
    if into != PAGE and into.exists() and any(into.iterdir()) and not (into / "build.py").exists():
        sys.exit(f"build.py: --into {into} holds files that are not an earlier fold: give an empty or new folder")
    if partial and into == PAGE:
        sys.exit("build.py: --partial folds into a copy (--into DIR), never over the published page")
    missing = missing_seeds()
    if missing and not partial:
        said = "; ".join(f"{name} seed {', '.join(seeds)} ({SOURCES[name]})" for name, seeds in missing.items())
        sys.exit(f"build.py: no run folder for {said}: finish those runs, or pass --partial for a dry fold")
    if into != PAGE:
        shutil.rmtree(into, ignore_errors=True)
        shutil.copytree(PAGE, into, ignore=shutil.ignore_patterns("runs", "__pycache__"))
    staged, old = into / "runs.new", into / "runs.old"
    for path in (staged, old):
        shutil.rmtree(path, ignore_errors=True)
    for name, page in SOURCES.items():
        for seed in SEEDS:
            src, dst = RESULTS / page / "runs" / name / f"seed{seed}", staged / name / f"seed{seed}"
            if (src / EVAL_FILE).exists():
                dst.mkdir(parents=True)
                for file in KEPT:
                    shutil.copy2(src / file, dst / file)
    if (into / "runs").exists():
        (into / "runs").rename(old)  # the page's runs are back in runs.old if what follows fails
    staged.rename(into / "runs")
    shutil.rmtree(old, ignore_errors=True)
    setup = json.loads((PAGE / RESULTS_JSON).read_text())["setup"]
    (into / RESULTS_JSON).write_text(results_json({"setup": setup}))  # the report adds each folder's row
    return AblationRunner(resolve("cpu", {}), into, None).report()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--into", type=Path, default=PAGE, help="where to build (default: this page)")
    parser.add_argument("--partial", action="store_true", help="build from the runs there are (a dry fold)")
    args = parser.parse_args()
    results = build(args.into.resolve(), args.partial)
    for c in results["claims"]:
        print(f"{c['verdict']:>15} | {c['claim'][:110]}")

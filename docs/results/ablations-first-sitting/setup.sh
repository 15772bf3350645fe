#!/bin/bash
# The references of the first sitting's re-run: the claims page's own baseline and SimCLR runs (2026-12-05,
# 10 epochs, seeds 0-2) copied into the run folder with their rows, so `byol ablate` skips them and every
# variant it trains pairs with the runs the page's other claims read. The untrained kNN caches are not
# copied: this host scores its own.
set -euo pipefail
cd /work/wt-run
OUT=/work/abl-first/run
mkdir -p "$OUT"
/work/main/.venv/bin/python - "$OUT" <<'PY'
import json, shutil, sys
from pathlib import Path
from byol.ablate.runner import results_json
out, page = Path(sys.argv[1]), Path("docs/results/ablations")
src = json.loads((page / "ablations.json").read_text())
setup = {**src["setup"], "probe_epochs": 2.0, "scale_tau": False}
res = {"setup": setup, "variants": {n: src["variants"][n] for n in ("baseline", "simclr")}}
for n in res["variants"]:
    for seed in res["variants"][n]["seeds"]:
        shutil.copytree(page / "runs" / n / f"seed{seed}", out / n / f"seed{seed}", dirs_exist_ok=True)
(out / "ablations.json").write_text(results_json(res))
print(json.dumps(setup))
PY

#!/bin/bash
# The references of the `init` suite, not trained again: the baseline (docs/results/ablations/runs), lars
# (docs/results/ablations-tau0-lars-10ep/runs) and no_norm_lars (docs/results/ablations-missing-2026-12-07/runs),
# seeds 0-2, 10 epochs, copied in with their rows (each run's own ablation_eval.json), so `byol ablate` trains
# no_norm_lars_mimic alone.
set -euo pipefail
cd /work/wt-init
OUT=/work/abl-init/run
mkdir -p "$OUT"
/work/main/.venv/bin/python - "$OUT" <<'PY'
import json, shutil, sys
from pathlib import Path
from byol.ablate.runner import _entry, results_json
from byol.ablate.variants import VARIANTS
out, res = Path(sys.argv[1]), Path("docs/results")
setup = json.loads((res / "ablations-missing-2026-12-07" / "ablations.json").read_text())["setup"]
results = {"setup": setup, "variants": {}}
for name, page in (("baseline", "ablations"), ("lars", "ablations-tau0-lars-10ep"),
                   ("no_norm_lars", "ablations-missing-2026-12-07")):
    entry = results["variants"][name] = _entry(VARIANTS[name])
    for seed in (0, 1, 2):
        src = res / page / "runs" / name / f"seed{seed}"
        shutil.copytree(src, out / name / f"seed{seed}", dirs_exist_ok=True)
        entry["seeds"][str(seed)] = json.loads((src / "ablation_eval.json").read_text())
(out / "ablations.json").write_text(results_json(results))
print(json.dumps(setup))
PY

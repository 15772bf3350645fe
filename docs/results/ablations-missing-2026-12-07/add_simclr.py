"""Copy the committed simclr seeds (docs/results/ablations, the same 10-epoch cpu-preset setup) into the run folder and its ablations.json, so that `byol ablate --suite missing` skips them."""
import json, shutil
from pathlib import Path
src = Path("/work/main/docs/results/ablations")
out = Path("/work/abl-missing/run")
committed = json.loads((src / "ablations.json").read_text())["variants"]["simclr"]
results = json.loads((out / "ablations.json").read_text())
for seed in ("0", "1", "2"):
    dst = out / "simclr" / f"seed{seed}"
    if not dst.exists():
        shutil.copytree(src / "runs" / "simclr" / f"seed{seed}", dst)
results["variants"]["simclr"] = committed
(out / "ablations.json").write_text(json.dumps(results, indent=1))
print({k: list(v["seeds"]) for k, v in results["variants"].items()})

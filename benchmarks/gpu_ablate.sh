#!/usr/bin/env bash
# The ablations' GPU part (issue 21) in one command of at most 9.5 minutes on one H100/H200: ResNet-18
# on CIFAR-10 with GroupNorm + weight standardisation (at least 8 channels a group; and, with
# --suite encoder_gn_ws,encoder_gn_ws_mimic, its BatchNorm-mimicking start) against BatchNorm, for
# --epochs each and --seeds seeds, each scored by kNN on the 10,000 test images beside its own
# untrained encoder, by `byol ablate` and its rule. Run it after gpu_accuracy.sh, in a call of its own.
# `byol ablate` writes ablations.json as each run ends, so a run cut at the deadline leaves every
# finished one; the report is then written again from what finished.
#
#   bash benchmarks/gpu_ablate.sh [--data DIR] [--out DIR] [--epochs 20] [--seeds 2]
#                                 [--suite encoder_gn_ws] [--deadline 570] [-- MORE ABLATE FLAGS]
#   bash benchmarks/gpu_ablate.sh --smoke     # tiny sizes on a CPU, in seconds
#
# DATA as gpu_accuracy.sh: ../shared/data/cifar10, else .gpu-data/cifar10.tgz (carry .gpu-data).
# Output: --out, default $OUT/ablate when $OUT is set (the device tool), else gpu-ablate/.
set -euo pipefail
source "$(dirname "$0")/gpu_lib.sh"
SMOKE=0
DATA=""
EPOCHS=20
SEEDS=2
SUITE=encoder_gn_ws
DEADLINE=570
DEST="${OUT:+$OUT/ablate}"
DEST="${DEST:-gpu-ablate}"
EXTRA=()
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) SMOKE=1 ;;
    --data) DATA="$2"; shift ;;
    --out) DEST="$2"; shift ;;
    --epochs) EPOCHS="$2"; shift ;;
    --seeds) SEEDS="$2"; shift ;;
    --suite) SUITE="$2"; shift ;;
    --deadline) DEADLINE="$2"; shift ;;
    --) shift; EXTRA=("$@"); break ;;
    *) echo "gpu_ablate.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
export BYOL_CACHE_DIR="$WORK/cache"
mkdir -p "$DEST"
DEST="$(cd "$DEST" && pwd)"
if [ "$SMOKE" = 1 ]; then
  DEVICE=cpu
  smoke_data "$WORK/data" "${DATA:-}"
  DATA="$WORK/data"
  EPOCHS=1
  SEEDS=1
  ARGS=(--preset cpu --batch-size 16 --workers 0 --set model.projector_hidden=64 --set model.predictor_hidden=64
        --set augment.compile=off --set run.knn_every=0)
else
  DEVICE=cuda
  [ -n "$DATA" ] || DATA="$(find_cifar "$WORK")"
  ARGS=(--preset cifar10 --batch-size 512 --compile --set run.knn_every=0 --set run.checkpoint_every_minutes=2)
fi
if [ -z "$DATA" ] || [ ! -d "$DATA/train" ] || [ ! -d "$DATA/test" ]; then
  echo "gpu_ablate.sh: no CIFAR-10 folder: pass --data DIR (train/ and test/) or pack .gpu-data (gpu_data.sh)" >&2
  exit 2
fi

ABL=("$PY" -m byol ablate "$DATA/train" --test "$DATA/test" --out "$WORK/abl" --device "$DEVICE" --suite "$SUITE"
     --seeds "$SEEDS" --epochs "$EPOCHS" "${ARGS[@]}" "${EXTRA[@]}")
note "ablate (at most $(( DEADLINE - SECONDS - 20 ))s): ${ABL[*]}"
code=0
timeout -k 10 $(( DEADLINE - SECONDS - 20 )) "${ABL[@]}" >"$DEST/ablate.log" 2>&1 || code=$?
tail -n 5 "$DEST/ablate.log" >&2
if [ -f "$WORK/abl/ablations.json" ]; then
  [ "$code" = 0 ] || "${ABL[@]}" --report-only >>"$DEST/ablate.log" 2>&1 || true  # the report of what finished
  cp "$WORK"/abl/ablations.* "$WORK"/abl/*.png "$DEST/" 2>/dev/null || true
  for run in "$WORK"/abl/*/seed*; do  # each run's raw files (the weights stay behind: they are big)
    name="$(basename "$(dirname "$run")")-$(basename "$run")"
    mkdir -p "$DEST/$name"
    for f in summary.json config.yaml metrics.jsonl ablation_eval.json; do [ ! -f "$run/$f" ] || cp "$run/$f" "$DEST/$name/"; done
  done
fi
"$PY" - "$DEST" "$code" <<'PYEOF'
import json, sys
from pathlib import Path
dest, code = Path(sys.argv[1]), int(sys.argv[2])
res = json.loads((dest / "ablations.json").read_text()) if (dest / "ablations.json").exists() else {}
runs = {f"{v}/seed{s}": {k: r.get(k) for k in ("knn_top1", "untrained_top1", "epochs", "minutes", "spread", "top_share")}
        for v, e in res.get("variants", {}).items() for s, r in e.get("seeds", {}).items()}
claims = [c for c in res.get("claims", []) if c["verdict"] != "not run"]
print(json.dumps({"out": str(dest), "exit": code, "runs": runs, "claims": claims}))
sys.exit(0 if runs else 1)
PYEOF

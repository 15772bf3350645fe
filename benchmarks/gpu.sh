#!/usr/bin/env bash
# Every GPU figure byol needs, in one prepared run of about 8 minutes on one H100/H200:
#   1. augment: two 224 px views on CUDA, batch 1024, eager and compiled   (target >= 50,000 img/s)
#   2. step: ResNet-18 CIFAR at batch 512 and ResNet-50 224 px at batch 128, bf16 + channels_last,
#      eager and compiled, against the backbone alone: images/s and TFLOP/s
#   3. byol pretrain of ResNet-18 on the CIFAR-10 folder for a 4-minute --time-budget, then kNN
#   4. where the pretrain loop's time goes, part by part (benchmarks/loop.py, compiled, batch 512)
#      and again with LARS's step compiled (optim.compiled_step: one graph, not a launch per tensor)
#   5. the same CLI under torchrun --nproc_per_node 1 (NCCL), 15 seconds
#   6. scale: a timm backbone on WebDataset shards under torchrun (NCCL, bf16) against the plain
#      single-process run on the folder, images/s of each (issue 13); timm and webdataset come from
#      .gpu-data/pylib when the GPU machine lacks them (benchmarks/gpu_data.sh unpacks their wheels)
# Everything lands in one JSON file (--out, default $OUT/gpu.json when $OUT is set, else gpu.json).
#
#   bash benchmarks/gpu.sh [--data DIR] [--out FILE] [--minutes 3] [--only a,b]   # on a GPU machine
#   bash benchmarks/gpu.sh --smoke                       # tiny sizes on a CPU, two sections at a time (make test)
#
# DATA is a folder with train/ and test/ (ImageFolder). Default: ../shared/data/cifar10, else the
# archive .gpu-data/cifar10.tgz that `bash benchmarks/gpu_data.sh` packs (about 20 MB; carry it).
set -euo pipefail
source "$(dirname "$0")/gpu_lib.sh"
SMOKE=0
DATA=""
MINUTES=3
ONLY=""
OUTFILE="${OUT:+$OUT/gpu.json}"
OUTFILE="${OUTFILE:-gpu.json}"
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) SMOKE=1 ;;
    --data) DATA="$2"; shift ;;
    --minutes) MINUTES="$2"; shift ;;
    --only) ONLY="$2"; shift ;;
    --out) OUTFILE="$2"; shift ;;
    *) echo "gpu.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
export BYOL_CACHE_DIR="$WORK/cache"
LINES="$WORK/lines.jsonl"
: >"$LINES"

want() { [ -z "$ONLY" ] || [[ ",$ONLY," == *",$1,"* ]]; }  # --only a,b: just those sections
record() { record_to "$LINES" "$WORK" "$@"; }  # record NAME SECONDS COMMAND... (gpu_lib.sh)

if [ "$SMOKE" = 1 ]; then
  DEVICE=cpu
  export OMP_NUM_THREADS=1  # two sections at a time, a core each
  smoke_data "$WORK/data" "${DATA:-}"
  DATA="$WORK/data"
  TINY=(--preset cpu --batch-size 16 --workers 0 --set model.projector_hidden=64 --set model.predictor_hidden=64
        --set augment.compile=off)
  AUG=(--sizes 32 --batch 16 --pil-images 16 --repeats 1 --no-compile)
  STEP=(--configs convnet_32px --batch 16 --repeats 1 --steps 1 --warmup 1 --impls byol floor_cl)
  STEP_COMPILED=()
  PRETRAIN=("${TINY[@]}" --time-budget 0.025)
  LOOP=(--preset cpu --batch 16 --steps 3 --warmup 1 --set model.projector_hidden=64 --set model.predictor_hidden=64
        --set augment.compile=off)
  TORCHRUN=("${TINY[@]}" --time-budget 0.025)
  SCALE=("${TINY[@]}" --backbone timm:resnet10t --time-budget 0.025 --set run.knn_every=0)
  SHARD_SIZE=32
else
  DEVICE=cuda
  [ -n "$DATA" ] || DATA="$(find_cifar "$WORK")"
  AUG=(--sizes 224 --repeats 3 --cuda-only --cuda-batch 1024)
  STEP=(--configs r18w1_32px r50_224px --batch-scale 8 --repeats 3 --steps 5 --warmup 3 --impls byol floor_cl)
  STEP_COMPILED=(--configs r18w1_32px --batch-scale 8 --repeats 3 --steps 5 --warmup 3 --impls byol floor_cl --compile)
  PRETRAIN=(--preset cifar10 --time-budget "$MINUTES" --batch-size 512 --compile)
  LOOP=(--preset cifar10 --batch 512 --compile --steps 300 --warmup 30)
  TORCHRUN=(--preset cifar10 --time-budget 0.25 --batch-size 512)
  SCALE=(--preset cifar10 --backbone timm:resnet18 --time-budget 0.3 --batch-size 512 --set run.knn_every=0
         --set augment.compile=off)
  SHARD_SIZE=5000
fi

"$PY" -c 'import json, platform, torch; print(json.dumps({"torch": torch.__version__, "python": platform.python_version(), "cuda": torch.cuda.is_available(), "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None}))' >"$WORK/env.log"
tail -n 1 "$WORK/env.log" | "$PY" -c 'import json,sys; sys.stdout.write(json.dumps({"section": "env", **json.loads(sys.stdin.read())}) + "\n")' >>"$LINES"

speed() {  # SECTION RUN_DIR: the median images/s of the steady part of a run's log
  "$PY" - "$1" "$2/metrics.jsonl" >>"$LINES" <<'EOF' || echo "{\"section\": \"$1\", \"error\": \"no metrics\"}" >>"$LINES"
import json, sys
rows = [json.loads(line) for line in open(sys.argv[2]) if '"images_per_sec"' in line]
ips = [r["images_per_sec"] for r in rows[len(rows) // 4 :]]
sys.stdout.write(json.dumps({"section": sys.argv[1], "images_per_sec_median": sorted(ips)[len(ips) // 2] if ips else None,
                             "log_lines": len(rows)}) + "\n")  # one write: sections run two at a time (gpu_lib.sh)
EOF
}

# Seconds per section: about 8 minutes in all with a 3-minute pretraining. Each group of sections
# is a function; on a GPU they run one after another (nothing else on the machine while one is timed),
# in a --smoke run two at a time (mostly Python start-ups: a CPU core each).
sec_augment() { want augment && record augment 60 "$PY" "$ROOT/benchmarks/augment.py" "${AUG[@]}"; }
sec_step() {
  want step || return 0
  record step 60 "$PY" "$ROOT/benchmarks/step.py" --device "$DEVICE" "${STEP[@]}"
  if [ ${#STEP_COMPILED[@]} -gt 0 ]; then
    record step_compiled 75 "$PY" "$ROOT/benchmarks/step.py" --device "$DEVICE" "${STEP_COMPILED[@]}"
  fi
}
has_data() { [ -n "$DATA" ] && [ -d "$DATA/train" ]; }
sec_pretrain() {
  want pretrain || return 0
  if ! has_data; then
    echo '{"section": "pretrain", "error": "no data: pass --data DIR or pack .gpu-data/cifar10.tgz (benchmarks/gpu_data.sh)"}' >>"$LINES"
    return 0
  fi
  local run="$WORK/run"
  record pretrain "$(( ${MINUTES%.*} * 60 + 50 ))" "$PY" -m byol.cli pretrain "$DATA/train" --out "$run" --device "$DEVICE" --no-progress "${PRETRAIN[@]}"
  record knn 40 "$PY" -m byol.cli eval knn "$run" --train "$DATA/train" --test "$DATA/test" --device "$DEVICE" --json --baseline
  speed pretrain_speed "$run"
}
sec_loop() {
  want pretrain && has_data || return 0
  record loop 150 "$PY" "$ROOT/benchmarks/loop.py" --data "$DATA/train" --device "$DEVICE" "${LOOP[@]}"
  # the same loop with LARS's step as one compiled graph (optim.compiled_step), the model's graphs now cached
  record loop_compiled_step 100 "$PY" "$ROOT/benchmarks/loop.py" --data "$DATA/train" --device "$DEVICE" "${LOOP[@]}" \
    --set optim.optimizer=lars --set optim.compiled_step=true
}
sec_torchrun() {
  want pretrain && has_data || return 0
  record torchrun 45 "$PY" -m torch.distributed.run --standalone --nproc_per_node 1 -m byol.cli pretrain "$DATA/train" \
    --out "$WORK/run-torchrun" --device "$DEVICE" --no-progress "${TORCHRUN[@]}"
}
# scale: the plain run on the folder, then torchrun on the same images as shards (a timm backbone).
sec_scale_plain() {
  want scale && has_data || return 0
  record scale_plain 110 "$PY" -m byol.cli pretrain "$DATA/train" --out "$WORK/run-plain" --device "$DEVICE" \
    --no-progress --set run.log_every=10 "${SCALE[@]}"
  speed scale_plain_speed "$WORK/run-plain"
}
sec_scale_shards() {
  want scale && has_data || return 0
  "$PY" -m byol.cli shard "$DATA/train" --out "$WORK/shards" --shard-size "$SHARD_SIZE" >"$WORK/shard.log" 2>&1
  local pattern
  pattern=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["pattern"])' "$WORK/shards/shards.json")
  record scale_shards_torchrun 110 "$PY" -m torch.distributed.run --standalone --nproc_per_node 1 -m byol pretrain \
    "$pattern" --out "$WORK/run-shards" --device "$DEVICE" --no-progress --set run.log_every=10 "${SCALE[@]}"
  speed scale_shards_speed "$WORK/run-shards"
}

ORDER="sec_augment sec_step sec_pretrain sec_loop sec_torchrun sec_scale_plain sec_scale_shards"
[ "$SMOKE" = 0 ] || ORDER="sec_scale_shards sec_scale_plain sec_torchrun sec_pretrain sec_loop sec_step sec_augment"  # longest first
for sec in $ORDER; do
  if [ "$SMOKE" = 1 ]; then
    [ "$(jobs -rp | wc -l)" -lt 2 ] || wait -n || true
    "$sec" &
  else
    "$sec"
  fi
done
wait

mkdir -p "$(dirname "$OUTFILE")"
"$PY" - "$LINES" "$OUTFILE" <<'EOF'
import json, sys
sections = {}
for line in open(sys.argv[1]):
    d = json.loads(line)
    sections[d.pop("section")] = d
json.dump(sections, open(sys.argv[2], "w"), indent=1)
failed = [k for k, v in sections.items() if "error" in v]
print(json.dumps({"out": sys.argv[2], "sections": list(sections), "failed": failed}))
sys.exit(1 if failed else 0)
EOF

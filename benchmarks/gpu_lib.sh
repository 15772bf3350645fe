# Shared by benchmarks/gpu.sh and benchmarks/gpu_accuracy.sh (sourced, not run): the Python to use,
# where the CIFAR-10 folder is, the tiny data of a --smoke run, and a section runner that never
# lets one failed section end the script.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ -x "$ROOT/.venv/bin/python" ]; then PY="$ROOT/.venv/bin/python"; else PY="${PYTHON:-python3}"; fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
# timm and webdataset for gpu.sh's scale section, where the machine has none (pure-Python wheels, unpacked)
if [ -d "$ROOT/.gpu-data/pylib" ] && ! "$PY" -c 'import timm, webdataset' 2>/dev/null; then
  export PYTHONPATH="$PYTHONPATH:$ROOT/.gpu-data/pylib"
fi

note() { echo "== $(basename "$0") $(date +%H:%M:%S) $*" >&2; }

# find_cifar WORK: the CIFAR-10 folder (train/ and test/): ../shared/data/cifar10, else the archive
# .gpu-data/cifar10.tgz (benchmarks/gpu_data.sh) unpacked into WORK. Prints nothing when there is none.
find_cifar() {
  if [ -d "$ROOT/../shared/data/cifar10/train" ]; then echo "$ROOT/../shared/data/cifar10"
  elif [ -f "$ROOT/.gpu-data/cifar10.tgz" ]; then
    mkdir -p "$1/data" && tar xzf "$ROOT/.gpu-data/cifar10.tgz" -C "$1/data" && echo "$1/data/cifar10"
  fi
}

# smoke_data DEST [SRC]: DEST/{train,test}/c{0,1}/*.png, two classes of real CIFAR files when SRC
# (default ../shared/data/cifar10) has them, else noise: 48 train and 12 test images per class.
smoke_data() {
  "$PY" - "$1" "${2:-$ROOT/../shared/data/cifar10}" <<'PYEOF'
import sys
from pathlib import Path
import numpy as np
from PIL import Image
out, src = Path(sys.argv[1]), Path(sys.argv[2])
rng = np.random.default_rng(0)
for split, n in (("train", 48), ("test", 12)):
    classes = sorted(p for p in (src / split).iterdir() if p.is_dir())[:2] if (src / split).is_dir() else []
    for c in range(2):
        files = sorted(classes[c].iterdir())[:n] if c < len(classes) else []
        (out / split / f"c{c}").mkdir(parents=True)
        for i in range(n):
            img = Image.open(files[i]) if i < len(files) else Image.fromarray(rng.integers(0, 256, (32, 32, 3), np.uint8))
            img.convert("RGB").save(out / split / f"c{c}" / f"{i}.png")
PYEOF
}

# record_to LINES LOG_DIR NAME SECONDS COMMAND...: run it for at most SECONDS with its output in
# LOG_DIR/NAME.log, and append its last line (a JSON object) to LINES under "section": NAME. A
# failure or a time-out is recorded there, not fatal.
# Sections may run two at a time (--smoke), appending to the same LINES: each line goes out in one
# write() (print() writes the text and its newline apart, and with PYTHONUNBUFFERED a neighbour's
# line could land between them: two objects on one line; CI saw it once).
record_to() {
  local lines="$1" logs="$2" name="$3" limit="$4"; shift 4
  local log="$logs/$name.log" start=$SECONDS
  note "$name (at most ${limit}s): $*"
  if timeout -k 10 "$limit" "$@" >"$log" 2>&1; then
    tail -n 1 "$log" | "$PY" -c 'import json,sys; d=json.loads(sys.stdin.read()); sys.stdout.write(json.dumps({"section": sys.argv[1], "seconds": int(sys.argv[2]), **d}) + "\n")' "$name" "$((SECONDS - start))" >>"$lines" \
      || echo "{\"section\": \"$name\", \"error\": \"no JSON on the last line\"}" >>"$lines"
  else
    local code=$?
    "$PY" -c 'import json,sys; sys.stdout.write(json.dumps({"section": sys.argv[1], "exit": int(sys.argv[3]), "seconds": int(sys.argv[4]), "error": open(sys.argv[2]).read()[-1500:]}) + "\n")' "$name" "$log" "$code" "$((SECONDS - start))" >>"$lines"
  fi
  tail -n 25 "$log" >&2
}

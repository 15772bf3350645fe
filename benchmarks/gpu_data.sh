#!/usr/bin/env bash
# Packs the CIFAR-10 folder (../shared/data/cifar10: train/ and test/) into .gpu-data/cifar10.tgz
# (about 20 MB), for a GPU machine that receives only the repository: carry ".gpu-data" and
# benchmarks/gpu.sh unpacks it. .gpu-data/ is git-ignored; data never enters the repository.
# Also unpacks the pure-Python wheels of timm, webdataset and braceexpand into .gpu-data/pylib (about
# 11 MB), for gpu.sh's scale section on a machine that has torch but not them (pip from this machine).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SRC="$(cd "${1:-$ROOT/../shared/data/cifar10}" && pwd)"
mkdir -p "$ROOT/.gpu-data"
tar czf "$ROOT/.gpu-data/cifar10.tgz" -C "$(dirname "$SRC")" --transform "s,^$(basename "$SRC"),cifar10," \
  "$(basename "$SRC")/train" "$(basename "$SRC")/test"
ls -l "$ROOT/.gpu-data/cifar10.tgz"
rm -rf "$ROOT/.gpu-data/wheels" "$ROOT/.gpu-data/pylib"
if "$ROOT/.venv/bin/pip" download --quiet --no-deps -d "$ROOT/.gpu-data/wheels" timm webdataset braceexpand; then
  for wheel in "$ROOT"/.gpu-data/wheels/*.whl; do "$ROOT/.venv/bin/python" -m zipfile -e "$wheel" "$ROOT/.gpu-data/pylib"; done
  rm -rf "$ROOT/.gpu-data/wheels"
  du -sh "$ROOT/.gpu-data/pylib"
else
  echo "gpu_data.sh: could not download timm/webdataset wheels; gpu.sh's scale section needs them on the GPU machine" >&2
fi

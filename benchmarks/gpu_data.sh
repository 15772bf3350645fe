#!/usr/bin/env bash
# Packs the CIFAR-10 folder (../shared/data/cifar10: train/ and test/) into .gpu-data/cifar10.tgz
# (about 20 MB), for a GPU machine that receives only the repository: carry ".gpu-data" and
# benchmarks/gpu.sh unpacks it. .gpu-data/ is git-ignored; data never enters the repository.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SRC="$(cd "${1:-$ROOT/../shared/data/cifar10}" && pwd)"
mkdir -p "$ROOT/.gpu-data"
tar czf "$ROOT/.gpu-data/cifar10.tgz" -C "$(dirname "$SRC")" --transform "s,^$(basename "$SRC"),cifar10," \
  "$(basename "$SRC")/train" "$(basename "$SRC")/test"
ls -l "$ROOT/.gpu-data/cifar10.tgz"

#!/bin/bash
# Copy the init suite's trained runs (config, metrics, summary, kNN result; no checkpoints or encoders) and its report
# into the page; the references (baseline, lars, no_norm_lars) are the runs of the pages setup.sh names, not copied again.
set -euo pipefail
SRC=/work/abl-init/run
DST=/work/main/docs/results/ablations-init-2026-12-07
mkdir -p "$DST"
for run in "$SRC"/*/seed*; do
  [ -f "$run/ablation_eval.json" ] || continue
  rel=${run#"$SRC"/}
  case "$rel" in baseline/*|lars/*|no_norm_lars/*) continue;; esac
  mkdir -p "$DST/runs/$rel"
  for f in ablation_eval.json config.yaml metrics.jsonl summary.json; do cp "$run/$f" "$DST/runs/$rel/"; done
done
cp "$SRC"/ablations.json "$SRC"/ablations.md "$SRC"/accuracy.png "$SRC"/collapse.png "$DST/"
cp /work/abl-init/setup.sh /work/abl-init/cmd.sh /work/abl-init/publish.sh "$DST/"
tr "\r" "\n" < /work/abl-init/log.txt | grep -v "^W1207\|^$" > "$DST/log.txt"
ls "$DST" "$DST"/runs/*
# the report as today's code writes it from the page's own files (the byte-for-byte test checks the same)
cd /work/main && .venv/bin/byol ablate ../shared/data/cifar10/train --preset cpu --out "$DST" --report-only

#!/bin/bash
# Copy the finished runs of /work/abl-missing/run (without checkpoints) and the suite's report into the results page.
set -e
SRC=/work/abl-missing/run
DST=/work/main/docs/results/ablations-missing-2026-12-07
for run in $SRC/*/seed*; do
  [ -f "$run/ablation_eval.json" ] || continue
  rel=${run#$SRC/}
  case "$rel" in baseline/*|lars/*|simclr/*) continue;; esac  # committed already (ablations, ablations-tau0-lars-10ep)
  mkdir -p "$DST/runs/$rel"
  for f in ablation_eval.json config.yaml metrics.jsonl summary.json; do cp "$run/$f" "$DST/runs/$rel/"; done
done
cp $SRC/ablations.json $SRC/ablations.md $SRC/accuracy.png $SRC/collapse.png $DST/
ls $DST $DST/runs/*

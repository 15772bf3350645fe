#!/bin/bash
# Copy the details suite's finished runs (without checkpoints) and its report (--report-only by today's code) into the results page.
set -e
cd /work/main
SRC=/work/abl-details/run
DST=/work/main/docs/results/ablations-details-2026-12-07
.venv/bin/byol ablate ../shared/data/cifar10/train --test ../shared/data/cifar10/test --preset cpu --seeds 3 --epochs 10 --suite details --out $SRC --report-only > /dev/null
mkdir -p $DST
for run in $SRC/tau_0_predictor_lr_lars/seed* $SRC/projector_output_bn/seed*; do
  [ -f "$run/ablation_eval.json" ] || continue
  rel=${run#$SRC/}
  mkdir -p "$DST/runs/$rel"
  for f in ablation_eval.json config.yaml metrics.jsonl summary.json; do cp "$run/$f" "$DST/runs/$rel/"; done
done
cp $SRC/ablations.json $SRC/ablations.md $SRC/accuracy.png $SRC/collapse.png $DST/
cp /work/abl-details/cmd.sh /work/abl-details/setup.sh /work/abl-details/publish.sh $DST/

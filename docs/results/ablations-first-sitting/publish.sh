#!/bin/bash
# Copy the finished runs of /work/abl-first/run (config, metrics, summary, kNN result; no checkpoints or encoders)
# and the suite's ablations.json into the page, in the runs/<variant>/seed<N>/ layout; the baseline and SimCLR
# copies are the claims page's own runs (docs/results/ablations/runs/), not copied again.
set -euo pipefail
SRC=/work/abl-first/run
DST=/work/main/docs/results/ablations-first-sitting
mkdir -p "$DST"
for run in "$SRC"/*/seed*; do
  [ -f "$run/ablation_eval.json" ] || continue
  rel=${run#"$SRC"/}
  case "$rel" in baseline/*|simclr/*) continue;; esac
  mkdir -p "$DST/runs/$rel"
  for f in ablation_eval.json config.yaml metrics.jsonl summary.json; do cp "$run/$f" "$DST/runs/$rel/"; done
done
cp "$SRC/ablations.json" "$DST/"
LOG=/work/abl-first/log.txt
[ -s "$LOG" ] || { echo "publish.sh: no $LOG of this sitting (published already?): the page's log stays" >&2; ls "$DST"; exit 0; }
{  # the earlier sittings' log (resume.sh kept it), then this one's, without PyTorch's W<date> warnings
  cat /work/abl-first/log-before.txt 2>/dev/null || true
  if [ -f /work/abl-first/log-before.txt ]; then  # the host as /proc/cpuinfo and PyTorch tell it (VMs mask the model name)
    cpu=$(awk -F': ' '/^model name/{n=$2} /^cpu family/{f=$2} /^model\t/{m=$2} END{print n", family "f" model "m}' /proc/cpuinfo)
    isa=$(/work/main/.venv/bin/python -c "import torch; print(torch.backends.cpu.get_cpu_capability())")
    echo "# next sitting (this log published $(date -u "+%F %H:%M") UTC), on $cpu, $isa"
  fi
  tr "\r" "\n" < "$LOG" | { grep -v "^W[0-9]\{4\} \|^$" || true; }
} > "$DST/log.txt"
# the page's log is now every sitting's: the next sitting (on this machine or, through resume.sh, a fresh one)
# starts from it, and this sitting's raw log is kept beside, so a second publish cannot drop or repeat a sitting
cp "$DST/log.txt" /work/abl-first/log-before.txt
mv "$LOG" "/work/abl-first/log-published-$(date -u +%Y%m%dT%H%M).txt"
ls "$DST" "$DST"/runs/*

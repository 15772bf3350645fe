#!/bin/bash
# Next session (a fresh machine): rebuild the run folder from this page (its finished runs and ablations.json, and the
# claims page's baseline and SimCLR runs), then `bash cmd.sh` trains what is left: the runner skips every seed whose
# ablation_eval.json and row are there. Paths as in cmd.sh (/work/main the checkout; set WT to where it runs from).
set -euo pipefail
PAGE=/work/main/docs/results/ablations-first-sitting
OUT=/work/abl-first/run
mkdir -p "$OUT"
cp -r "$PAGE"/runs/* "$OUT"/
for v in baseline simclr; do cp -r /work/main/docs/results/ablations/runs/$v "$OUT"/; done
cp "$PAGE"/ablations.json "$OUT"/
# the earlier sittings' log, kept once a sitting (a second resume must not take this sitting's in): publish.sh puts
# this one's after it
[ -f /work/abl-first/log-before.txt ] || cp "$PAGE"/log.txt /work/abl-first/log-before.txt
ls "$OUT"

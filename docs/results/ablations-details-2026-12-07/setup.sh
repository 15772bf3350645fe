#!/bin/bash
# The details suite's references (baseline, lars, tau_0_lars: seeds 0-2, 10 epochs, the cpu preset) are the runs of
# docs/results/ablations-tau0-lars-10ep: copied (run folders and ablations.json) so that byol ablate skips them.
set -e
mkdir -p /work/abl-details/run
for v in baseline lars tau_0_lars; do
  [ -d /work/abl-details/run/$v ] || cp -r /work/abl-10ep/run/$v /work/abl-details/run/$v
done
[ -f /work/abl-details/run/ablations.json ] || cp /work/abl-10ep/run/ablations.json /work/abl-details/run/ablations.json

#!/bin/bash
# After setup.sh: the init suite's two variants (no_norm_lars_mimic, then no_norm_lars_mimic_all), 3 seeds, 10 epochs,
# bf16, beside the copied references. 2026-12-07: the first from a worktree at c52eea5 (suite init held it alone then),
# the second from one at 5e303c9, whose ChannelAffine computes in bf16 under autocast (WT=/work/wt-init, /work/wt-init2).
cd "${WT:-/work/main}" && /work/main/.venv/bin/python -m byol ablate ../shared/data/cifar10/train --test ../shared/data/cifar10/test \
  --preset cpu --seeds 3 --epochs 10 --precision bf16 --suite init --out /work/abl-init/run

#!/bin/bash
# After setup.sh (first sitting) or resume.sh (a later one): the first sitting's variants (suite first_sitting), 3 seeds,
# 10 epochs, the collapse probes 2 epochs, bf16 (the AMD host: 2.00x the step; auto probes each run and a busy minute
# can flip it), each in /work/abl-first/run/<variant>/seed<N>/. 2026-12-07 ran it from a worktree of the checkout at
# 8853fbc (WT=/work/wt-run); the venv is the checkout's. PRECISION overrides bf16: a host without a bf16 unit
# (2026-12-07's second sitting, an AMD EPYC Zen 3 with AVX2 only) ran PRECISION=auto, which trains fp32
# there without a probe (no bf16 unit).
cd "${WT:-/work/main}" && /work/main/.venv/bin/python -m byol ablate ../shared/data/cifar10/train --test ../shared/data/cifar10/test \
  --preset cpu --seeds 3 --epochs 10 --probe-epochs 2 --precision ${PRECISION:-bf16} --suite first_sitting --out /work/abl-first/run

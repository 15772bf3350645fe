cd /work/main && .venv/bin/byol ablate ../shared/data/cifar10/train --test ../shared/data/cifar10/test --preset cpu --seed 3 --seeds 3 --epochs 2 --suite lars,tau_0_lars --out /work/abl-rule/run

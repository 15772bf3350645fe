import os
from pathlib import Path

import pytest
import torch
from helpers import cifar_subset, tiny_config

from byol.train.pretrain import pretrain

torch.set_num_threads(min(2, os.cpu_count() or 1))

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
CIFAR = SHARED / "data" / "cifar10"


@pytest.fixture(scope="session")
def cifar_root() -> Path:
    if not (CIFAR / "train").is_dir():
        pytest.skip(f"CIFAR-10 JPEGs not found at {CIFAR}")
    return CIFAR


@pytest.fixture(scope="session")
def small(cifar_root, tmp_path_factory):
    base = tmp_path_factory.mktemp("cifar")
    return {
        "train": cifar_subset(cifar_root, "train", 40, base / "train"),
        "test": cifar_subset(cifar_root, "test", 20, base / "test"),
        "cache": base / "cache",
    }


@pytest.fixture(scope="session")
def short_run(small, tmp_path_factory):
    """Six epochs on 400 images: the run the other tests inspect."""
    run_dir = tmp_path_factory.mktemp("run")
    cfg = tiny_config(small["train"], small["cache"], epochs=6, knn_every=2)
    result = pretrain(cfg, run_dir, progress=False)
    return run_dir, result


@pytest.fixture(scope="session")
def learned_run(cifar_root, tmp_path_factory):
    """~940 steps on 10,000 real CIFAR images (about a minute): enough for learning to show.

    Measured when written: kNN 34.5% → 40.8%, fast linear probe 42.1% → 50.1% on 1,000 test images.
    """
    base = tmp_path_factory.mktemp("learned")
    train = cifar_subset(cifar_root, "train", 1000, base / "train")
    test = cifar_subset(cifar_root, "test", 100, base / "test")
    cfg = tiny_config(train, base / "cache", epochs=12, knn_every=6, log_every=50)
    cfg.model.width, cfg.model.projector_hidden, cfg.model.predictor_hidden = 0.5, 1024, 1024
    cfg.optim.batch_size = 128
    pretrain(cfg, base / "run", progress=False)
    return base / "run", train, test

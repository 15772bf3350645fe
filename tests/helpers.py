"""Small real datasets for tests: subsets of the shared CIFAR-10 JPEGs, linked, never copied."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from byol.presets import resolve

# One thread count in the test process and in every child it starts (children import this module):
# runs compared bit for bit then run the same kernels.
TEST_THREADS = min(2, os.cpu_count() or 1)
torch.set_num_threads(TEST_THREADS)


def cifar_subset(cifar_root: Path, split: str, per_class: int, dest: Path, classes: int = 10) -> Path:
    """``dest/<class>/*.jpg`` with the first ``per_class`` files of each class (sorted), as symlinks."""
    for cls in sorted(p.name for p in (cifar_root / split).iterdir())[:classes]:
        (dest / cls).mkdir(parents=True, exist_ok=True)
        for f in sorted((cifar_root / split / cls).iterdir())[:per_class]:
            link = dest / cls / f.name
            if not (link.exists() or link.is_symlink()):
                os.symlink(f.resolve(), link)
    return dest


def tiny_config(data: Path, cache_dir: Path, **run):
    """A seconds-long CPU config: convnet, small heads, eager augmentation, no compile, fp32 (the same
    numbers on every CPU: auto would be bf16 where the CPU has AMX)."""
    overrides = {
        "data": {"path": str(data), "cache_dir": str(cache_dir), "workers": 0},
        "model": {"backbone": "convnet", "width": 0.25, "projector_hidden": 128, "predictor_hidden": 128},
        "augment": {"compile": "off"},
        "optim": {"batch_size": 32, "warmup_epochs": 0.5},
        "run": {
            "time_budget": None,
            "epochs": 2,
            "log_every": 2,
            "knn_every": 1,
            "knn_k": 20,
            "precision": "fp32",
            **run,
        },
    }
    return resolve("cpu", overrides)

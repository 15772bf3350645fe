"""Named datasets (cifar10, cifar100, stl10) read by torchvision's loaders from files on disk.

Nothing is downloaded: the files must already be under ``$BYOL_DATASETS`` (default
``~/.cache/byol/datasets``), as torchvision lays them out (``cifar-10-batches-py/``,
``cifar-100-python/``, ``stl10_binary/``). Spelling: ``NAME`` (train split) or ``NAME:SPLIT``
(``cifar10:test``, ``stl10:unlabeled``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from byol.errors import ByolError

NAMED_DATASETS = ("cifar10", "cifar100", "stl10")
_FOLDERS = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python", "stl10": "stl10_binary"}
_SPLITS = {"cifar10": ("train", "test"), "cifar100": ("train", "test"), "stl10": ("train", "test", "unlabeled")}


def datasets_root() -> Path:
    return Path(os.environ.get("BYOL_DATASETS", Path.home() / ".cache" / "byol" / "datasets"))


def parse_name(spec: str) -> tuple[str, str] | None:
    """``"cifar10:test"`` → ``("cifar10", "test")``; None when ``spec`` names no dataset."""
    name, _, split = str(spec).partition(":")
    if name not in NAMED_DATASETS:
        return None
    split = split or "train"
    if split not in _SPLITS[name]:
        raise ByolError(f"{spec}: {name} has the splits {', '.join(_SPLITS[name])}")
    return name, split


def load_named(name: str, split: str) -> tuple[np.ndarray, list[int] | None, list[str]]:
    """``(N, H, W, 3)`` uint8 images, labels (None for unlabelled splits) and class names."""
    from torchvision import datasets

    root = datasets_root()
    try:
        if name == "stl10":
            ds = datasets.STL10(str(root), split=split, download=False)
            array = np.ascontiguousarray(ds.data.transpose(0, 2, 3, 1))  # stored N×3×H×W
            labels = None if split == "unlabeled" else [int(y) for y in ds.labels]
        else:
            cls = datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100
            ds = cls(str(root), train=split == "train", download=False)
            array, labels = ds.data, [int(y) for y in ds.targets]
    except (RuntimeError, OSError) as e:
        raise ByolError(
            f"{name}: its files are not in {root / _FOLDERS[name]} ({e.__class__.__name__}); byol never downloads. "
            f"Put torchvision's {_FOLDERS[name]} folder there (or set BYOL_DATASETS), or pass an image folder"
        ) from None
    return array, labels, list(ds.classes)

"""Named datasets (cifar10, cifar100, stl10) read by torchvision's loaders from files on disk.

Nothing is downloaded: the files must already be under ``$BYOL_DATASETS`` (default
``~/.cache/byol/datasets``), as torchvision lays them out (``cifar-10-batches-py/``,
``cifar-100-python/``, ``stl10_binary/``). Spelling: ``NAME`` (train split) or ``NAME:SPLIT``
(``cifar10:test``, ``stl10:unlabeled``).
"""

from __future__ import annotations

import os
import pickle
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
        if name == "stl10":  # a raw binary format: nothing is unpickled
            ds = datasets.STL10(str(root), split=split, download=False)
            array = np.ascontiguousarray(ds.data.transpose(0, 2, 3, 1))  # stored N×3×H×W
            labels = None if split == "unlabeled" else [int(y) for y in ds.labels]
            return array, labels, list(ds.classes)
        return _read_cifar(root, datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100, split == "train")
    except (RuntimeError, OSError) as e:
        raise ByolError(
            f"{name}: its files are not in {root / _FOLDERS[name]} ({e.__class__.__name__}); byol never downloads. "
            f"Put torchvision's {_FOLDERS[name]} folder there (or set BYOL_DATASETS), or pass an image folder"
        ) from None


def _read_cifar(root: Path, cls, train: bool) -> tuple[np.ndarray, list[int], list[str]]:
    """torchvision's CIFAR files (its file list and checksums), read with ``safe_unpickle``."""
    from torchvision.datasets.utils import check_integrity

    folder = root / cls.base_folder
    files = cls.train_list if train else cls.test_list
    for file, md5 in [*files, (cls.meta["filename"], cls.meta["md5"])]:
        if not check_integrity(str(folder / file), md5):
            raise RuntimeError(f"{folder / file} is missing or differs from the published file")
    entries = [safe_unpickle(folder / file) for file, _ in files]
    data = np.vstack([e["data"] for e in entries]).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    labels = [int(y) for e in entries for y in e.get("labels", e.get("fine_labels", []))]
    classes = list(safe_unpickle(folder / cls.meta["filename"])[cls.meta["key"]])
    return np.ascontiguousarray(data), labels, classes


# What a CIFAR batch file may name: numpy arrays and the bytes codec of Python 2 pickles, nothing else.
_SAFE_GLOBALS = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("_codecs", "encode"),
}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _SAFE_GLOBALS:
            raise pickle.UnpicklingError(f"refused to load {module}.{name}")
        return super().find_class(module, name)


def safe_unpickle(path: Path) -> dict:
    """A pickled dict of lists, bytes, str, numbers and numpy arrays; anything else is refused.

    A plain ``pickle.load`` runs whatever code a file names (``os.system``...); this reader admits
    only numpy's array reconstruction, so a tampered dataset file is an error, never a program.
    """
    try:
        with open(path, "rb") as f:
            value = _RestrictedUnpickler(f, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as e:
        raise ByolError(f"{path} is not a plain data file ({e})") from None
    if not isinstance(value, dict):
        raise ByolError(f"{path} holds a {type(value).__name__}, not a dict of arrays")
    return value

import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(min(2, os.cpu_count() or 1))

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
CIFAR = SHARED / "data" / "cifar10"


@pytest.fixture(scope="session")
def cifar_root() -> Path:
    if not (CIFAR / "train").is_dir():
        pytest.skip(f"CIFAR-10 JPEGs not found at {CIFAR}")
    return CIFAR

"""Evaluations of an encoder on image folders: features once, then the protocol."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from byol.data.folder import list_images
from byol.data.loader import eval_images
from byol.encoder_io import build_from_meta
from byol.errors import ByolError
from byol.eval.features import extract_features
from byol.eval.knn import knn_accuracy


def untrained_like(meta: dict[str, Any], seed: int = 0) -> nn.Module:
    """The same backbone with fresh random weights: the baseline every evaluation compares with."""
    torch.manual_seed(seed)
    return build_from_meta(meta).eval()


def folder_features(
    encoder: nn.Module, meta: dict[str, Any], folder: str, device, workers: int = 4, progress: bool = False
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Features and labels of every readable image of a labelled folder; also the class count."""
    images = list_images(folder)
    if images.labels is None:
        raise ByolError(f"{folder} has no class folders (<class>/*.jpg); evaluation needs labels")
    batches = eval_images(images, meta["image_size"], workers=workers)
    feats, labels = extract_features(
        encoder.to(device), batches, device, meta["mean"], meta["std"], progress=progress, desc=f"features {folder}"
    )
    return feats, labels, len(images.classes)


def knn_evaluate(
    encoder: nn.Module,
    meta: dict[str, Any],
    train: str,
    test: str,
    k: int = 200,
    temperature: float = 0.1,
    device="cpu",
    workers: int = 4,
    progress: bool = False,
) -> dict[str, float]:
    """Weighted kNN top-1/top-5 from the ``train`` folder's features to the ``test`` folder's."""
    train_x, train_y, n_classes = folder_features(encoder, meta, train, device, workers, progress)
    test_x, test_y, n_test_classes = folder_features(encoder, meta, test, device, workers, progress)
    if n_test_classes > n_classes:
        raise ByolError(f"{test} has {n_test_classes} classes but {train} only {n_classes}")
    return knn_accuracy(train_x, train_y, test_x, test_y, k, temperature, n_classes)

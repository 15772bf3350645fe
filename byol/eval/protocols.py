"""The paper's evaluation protocols on image folders (Grill et al. 2020, §4.1 and appendix C).

- ``linear_fast``: features once (no augmentation), L-BFGS logistic regression (``eval.linear``).
- ``linear_augmented``: frozen encoder (BatchNorm frozen too), random resized crop + flip on train,
  centre crop on test, SGD with Nesterov momentum 0.9, no weight decay; the learning rate picked from
  {0.4, 0.3, 0.2, 0.1, 0.05} on a held-out part of train, then retrained on all of it and reported
  once on test.
- ``finetune``: the semi-supervised protocol: encoder and linear head fine-tuned on a class-balanced
  fraction of the labels (fixed seed), reported on test.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from byol.data.augment import TwoViewAugment, ViewParams
from byol.data.loader import TrainData, seeded_generator
from byol.errors import ByolError
from byol.eval.features import extract_features
from byol.eval.knn import topk_accuracy
from byol.eval.linear import linear_probe
from byol.eval.runner import folder_features

PAPER_LRS = (0.4, 0.3, 0.2, 0.1, 0.05)
CROP_FLIP = ViewParams(jitter_p=0.0, grayscale_p=0.0, blur_p=0.0, solarize_p=0.0)  # crop (0.08–1) + flip


def class_balanced_subset(labels: list[int], fraction: float, seed: int = 0) -> list[int]:
    """The same ``fraction`` of every class (at least one image each), chosen with a fixed seed."""
    if not 0 < fraction <= 1:
        raise ByolError(f"--label-fraction must be in (0, 1], got {fraction}")
    by_class: dict[int, list[int]] = {}
    for i, y in enumerate(labels):
        by_class.setdefault(y, []).append(i)
    g = torch.Generator().manual_seed(seed)
    chosen = []
    for y in sorted(by_class):
        idx = by_class[y]
        take = max(1, round(fraction * len(idx)))
        chosen += [idx[j] for j in torch.randperm(len(idx), generator=g)[:take].tolist()]
    return sorted(chosen)


def linear_fast(encoder, meta, train: str, test: str, device="cpu", workers: int = 4, progress=False) -> dict[str, Any]:
    train_x, train_y, n_classes = folder_features(encoder, meta, train, device, workers, progress)
    test_x, test_y, _ = folder_features(encoder, meta, test, device, workers, progress)
    return linear_probe(train_x, train_y, test_x, test_y, n_classes)


def _data(meta, folder: str, batch_size: int, workers: int, seed: int) -> TrainData:
    """A labelled folder as crop + flip training batches (and unaugmented evaluation batches)."""
    data = TrainData(folder, meta["image_size"], batch_size, CROP_FLIP, CROP_FLIP, seed=seed, workers=workers)
    if data.labels is None:
        raise ByolError(f"{folder} has no class folders (<class>/*.jpg); this evaluation needs labels")
    return data


def train_supervised(
    encoder: nn.Module,
    meta: dict[str, Any],
    data: TrainData,
    num_classes: int,
    epochs: int,
    lr: float,
    device,
    finetune: bool = False,
    seed: int = 0,
    progress: bool = False,
) -> nn.Linear:
    """Train a linear head (and, with ``finetune``, the encoder) with SGD Nesterov on crop + flip.

    A frozen encoder stays in eval mode (BatchNorm statistics frozen). Cosine decay of ``lr`` to 0.
    """
    torch.manual_seed(seed)
    head = nn.Linear(meta["feature_dim"], num_classes).to(device)
    params = list(head.parameters()) + (list(encoder.parameters()) if finetune else [])
    for p in encoder.parameters():
        p.requires_grad_(finetune)
    opt = torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True, weight_decay=0.0)
    augment = TwoViewAugment(meta["image_size"], CROP_FLIP, CROP_FLIP, meta["mean"], meta["std"])
    total = max(1, epochs * data.batches_per_epoch())
    encoder.train(finetune)
    step = 0
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, desc="finetune" if finetune else "linear", leave=False, unit="step")
    for epoch in range(epochs):
        for batch in data.epoch(epoch):
            g = seeded_generator(seed, step, device=device)
            if batch.images is not None:
                x = augment.view(batch.images.to(device), CROP_FLIP, g)
            else:
                x = augment.view(batch.crops[0].to(device), CROP_FLIP, g, crop=False)
            for group in opt.param_groups:
                group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / total))
            with torch.set_grad_enabled(finetune):
                features = encoder(x)
            loss = F.cross_entropy(head(features), batch.labels.to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    encoder.eval()
    return head


@torch.no_grad()
def score(encoder, head, meta, batches, device) -> dict[str, float]:
    feats, labels = extract_features(encoder, batches, device, meta["mean"], meta["std"])
    return topk_accuracy(head(feats.to(device)).cpu(), labels)


def linear_augmented(
    encoder: nn.Module,
    meta: dict[str, Any],
    train: str,
    test: str,
    epochs: int = 80,
    lrs=PAPER_LRS,
    batch_size: int = 1024,
    val_fraction: float = 0.1,
    device="cpu",
    workers: int = 4,
    seed: int = 0,
    progress: bool = False,
) -> dict[str, Any]:
    data = _data(meta, train, batch_size, workers, seed)
    perm = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))
    n_val = max(1, int(len(perm) * val_fraction))
    val_idx, fit_idx = perm[:n_val].sort().values, perm[n_val:].sort().values
    fit = data.restrict(fit_idx)
    val_acc = {}
    for lr in lrs:
        enc = copy.deepcopy(encoder).to(device)
        head = train_supervised(enc, meta, fit, data.num_classes, epochs, lr, device, seed=seed, progress=progress)
        val_acc[lr] = score(enc, head, meta, data.eval_batches(val_idx), device)["top1"]
    best = max(val_acc, key=lambda lr: (val_acc[lr], -lr))
    enc = copy.deepcopy(encoder).to(device)
    head = train_supervised(enc, meta, data, data.num_classes, epochs, best, device, seed=seed, progress=progress)
    test_data = _data(meta, test, 1, workers, seed)
    acc = score(enc, head, meta, test_data.eval_batches(torch.arange(len(test_data))), device)
    return {**acc, "lr": best, "val_top1": val_acc[best], "epochs": epochs}


def finetune(
    encoder: nn.Module,
    meta: dict[str, Any],
    train: str,
    test: str,
    label_fraction: float,
    epochs: int = 30,
    lr: float = 0.05,
    batch_size: int = 256,
    device="cpu",
    workers: int = 4,
    seed: int = 0,
    progress: bool = False,
) -> dict[str, Any]:
    data = _data(meta, train, 1, workers, seed)
    subset = class_balanced_subset([data.labels[i] for i in range(len(data))], label_fraction, seed)
    data.batch_size = min(batch_size, len(subset))
    labelled = data.restrict(subset)
    enc = copy.deepcopy(encoder).to(device)
    head = train_supervised(
        enc, meta, labelled, data.num_classes, epochs, lr, device, finetune=True, seed=seed, progress=progress
    )
    test_data = _data(meta, test, 1, workers, seed)
    acc = score(enc, head, meta, test_data.eval_batches(torch.arange(len(test_data))), device)
    return {**acc, "label_fraction": label_fraction, "labelled_images": len(subset), "epochs": epochs, "lr": lr}

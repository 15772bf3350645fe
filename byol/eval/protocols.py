"""The paper's evaluation protocols on image folders (Grill et al. 2020, §4.1 and appendix C).

- ``linear_fast``: features once (no augmentation), L-BFGS logistic regression (``eval.linear``).
- ``linear_augmented``: frozen encoder (BatchNorm frozen too), random resized crop + flip on train,
  centre crop on test, SGD with Nesterov momentum 0.9, no weight decay; the learning rate picked from
  ``byol.constants.LINEAR_LRS`` (0.4 down to 0.05) on a held-out part of train, then retrained on all of it and reported
  once on test.
- ``finetune``: the semi-supervised protocol: encoder and linear head fine-tuned on a class-balanced
  fraction of the labels (fixed seed), reported on test.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from byol.constants import LINEAR_BATCH_SIZE, LINEAR_EPOCHS, LINEAR_LRS
from byol.data.augment import TwoViewAugment, ViewParams
from byol.data.folder import ImageList
from byol.data.labels import labelled_splits
from byol.data.loader import TrainData
from byol.data.seeding import seeded_generator
from byol.errors import ByolError
from byol.eval.features import extract_features
from byol.eval.knn import topk_accuracy
from byol.eval.linear import linear_probe
from byol.eval.runner import EncoderEval
from byol.schedules import lr_schedule

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


def linear_fast(ev: EncoderEval, train: str, test: str) -> dict[str, Any]:
    """Features once, L-BFGS logistic regression with its penalty picked on held-out train images."""
    fit, scored = labelled_splits(train, test)
    train_x, train_y = ev.features(fit)
    test_x, test_y = ev.features(scored)
    return linear_probe(train_x, train_y, test_x, test_y, len(fit.classes))


def _crop_flip_data(ev: EncoderEval, train: str, test: str, batch_size: int) -> tuple[TrainData, ImageList]:
    """A labelled folder as crop + flip training batches (and evaluation-view batches), and the test
    split labelled as its classes (``byol.data.labels.labelled_splits``: checked before any training)."""
    _, scored = labelled_splits(train, test)
    meta = ev.meta
    data = TrainData(
        train, meta["image_size"], batch_size, CROP_FLIP, CROP_FLIP, ev.seed, workers=ev.workers,
        eval_crop=meta["eval_crop"],
    )  # fmt: skip
    return data, scored


def train_supervised(
    ev: EncoderEval, encoder: nn.Module, data: TrainData, epochs: int, lr: float, finetune: bool = False
) -> nn.Linear:
    """Train a linear head (and, with ``finetune``, ``encoder``) with SGD Nesterov on crop + flip.

    A frozen encoder stays in eval mode (BatchNorm statistics frozen). Cosine decay of ``lr`` to 0.
    """
    meta, device = ev.meta, ev.device
    torch.manual_seed(ev.seed)
    head = nn.Linear(meta["feature_dim"], data.num_classes).to(device)
    params = list(head.parameters()) + (list(encoder.parameters()) if finetune else [])
    for p in encoder.parameters():
        p.requires_grad_(finetune)
    opt = torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True, weight_decay=0.0)
    augment = TwoViewAugment(meta["image_size"], CROP_FLIP, CROP_FLIP, meta["mean"], meta["std"])
    total = max(1, epochs * data.batches_per_epoch())
    encoder.train(finetune)
    bar = None
    if ev.progress:
        from tqdm import tqdm

        bar = tqdm(total=total, desc="finetune" if finetune else "linear", leave=False, unit="step")
    step = 0
    for epoch in range(epochs):
        for batch in data.epoch(epoch):
            g = seeded_generator(ev.seed, step, device=device)
            if batch.images is not None:
                x = augment.view(batch.images.to(device), CROP_FLIP, g)
            else:
                x = augment.view(batch.crops[0].to(device), CROP_FLIP, g, crop=False)
            for group in opt.param_groups:
                group["lr"] = lr_schedule(step, total, lr)  # cosine to 0, no warm-up
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
def score(ev: EncoderEval, encoder: nn.Module, head: nn.Linear, images: ImageList) -> dict[str, float]:
    """Top-1/top-5 of ``head`` on ``encoder``'s features of a labelled split's evaluation views."""
    feats, labels = ev.features(images, encoder)
    return topk_accuracy(head(feats.to(ev.device)).cpu(), labels)


def linear_augmented(
    ev: EncoderEval,
    train: str,
    test: str,
    epochs: int = LINEAR_EPOCHS,
    lrs=LINEAR_LRS,
    batch_size: int = LINEAR_BATCH_SIZE,
    val_fraction=0.1,
) -> dict[str, Any]:
    """The paper's linear evaluation: the lr picked on held-out train images, retrained on all, test once."""
    data, scored = _crop_flip_data(ev, train, test, batch_size)
    perm = torch.randperm(len(data), generator=torch.Generator().manual_seed(ev.seed))
    n_val = max(1, int(len(perm) * val_fraction))
    val_idx, fit_idx = perm[:n_val].sort().values, perm[n_val:].sort().values
    fit = data.restrict(fit_idx)
    val_acc = {}
    for lr in lrs:
        enc = copy.deepcopy(ev.encoder).to(ev.device)
        head = train_supervised(ev, enc, fit, epochs, lr)
        feats, labels = extract_features(enc, data.eval_batches(val_idx), ev.device, ev.meta["mean"], ev.meta["std"])
        val_acc[lr] = topk_accuracy(head(feats.to(ev.device)).detach().cpu(), labels)["top1"]
    best = max(val_acc, key=lambda lr: (val_acc[lr], -lr))
    enc = copy.deepcopy(ev.encoder).to(ev.device)
    head = train_supervised(ev, enc, data, epochs, best)
    return {**score(ev, enc, head, scored), "lr": best, "val_top1": val_acc[best], "epochs": epochs}


def finetune(
    ev: EncoderEval, train: str, test: str, label_fraction: float, epochs: int = 30, lr: float = 0.05, batch_size=256
) -> dict[str, Any]:
    """Semi-supervised: encoder and head fine-tuned on a class-balanced fraction of the labels, test once."""
    data, scored = _crop_flip_data(ev, train, test, 1)
    subset = class_balanced_subset([data.labels[i] for i in range(len(data))], label_fraction, ev.seed)
    data.batch_size = min(batch_size, len(subset))
    enc = copy.deepcopy(ev.encoder).to(ev.device)
    head = train_supervised(ev, enc, data.restrict(subset), epochs, lr, finetune=True)
    acc = score(ev, enc, head, scored)
    return {**acc, "label_fraction": label_fraction, "labelled_images": len(subset), "epochs": epochs, "lr": lr}

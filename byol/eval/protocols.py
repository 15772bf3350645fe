"""The paper's evaluation protocols on image folders (Grill et al. 2020, §4.1 and appendix C).

- ``linear_fast``: features once (no augmentation), L-BFGS logistic regression (``eval.linear``).
- ``linear_augmented``: frozen encoder (BatchNorm frozen too), random resized crop + flip on train,
  centre crop on test, SGD with Nesterov momentum 0.9, no weight decay; the learning rate picked from
  ``byol.constants.LINEAR_LRS`` (0.4 down to 0.05) on a held-out part of train, then retrained on all of it and reported
  once on test.
- ``finetune``: the semi-supervised protocol: encoder and linear head fine-tuned on a class-balanced
  fraction of the labels (fixed seed), SGD Nesterov on crop + flip, BatchNorm in train mode, at least
  ``FINETUNE_MIN_STEPS`` steps; the head's start (zero, or the linear probe) and the learning rate
  picked from ``FINETUNE_GRID`` on held-out labelled train images outside the fraction (as the paper
  picked its hyperparameters on a held-out part of ImageNet's train set), reported once on test,
  beside that linear probe (L-BFGS on frozen features, fitted on the fraction alone; its penalty is
  picked on a tenth of the fraction, not on the held-out images the fine-tuning grid reads).
"""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from byol.constants import (
    FINETUNE_BATCH_SIZE,
    FINETUNE_GRID,
    FINETUNE_MIN_STEPS,
    LINEAR_BATCH_SIZE,
    LINEAR_EPOCHS,
    LINEAR_LRS,
)
from byol.data.augment import TwoViewAugment, ViewParams
from byol.data.folder import ImageList
from byol.data.labels import labelled_splits
from byol.data.loader import TrainData
from byol.data.seeding import seeded_generator
from byol.errors import ByolError
from byol.eval.features import extract_features
from byol.eval.knn import topk_accuracy
from byol.eval.linear import fit_probe, linear_probe
from byol.eval.runner import EncoderEval
from byol.schedules import lr_schedule

CROP_FLIP = ViewParams(jitter_p=0.0, grayscale_p=0.0, blur_p=0.0, solarize_p=0.0)  # crop (0.08–1) + flip


def class_balanced_subset(labels: list[int], fraction: float, seed: int = 0, held_out: float | None = None):
    """The same ``fraction`` of every class (at least one image each), chosen with a fixed seed; with
    ``held_out``, a pair: also that fraction of every class among the rest (the validation images)."""
    if not 0 < fraction <= 1:
        raise ByolError(f"--label-fraction must be in (0, 1], got {fraction}")
    by_class: dict[int, list[int]] = {}
    for i, y in enumerate(labels):
        by_class.setdefault(y, []).append(i)
    g = torch.Generator().manual_seed(seed)
    chosen, val = [], []
    for y in sorted(by_class):
        idx = by_class[y]
        take = max(1, round(fraction * len(idx)))
        order = [idx[j] for j in torch.randperm(len(idx), generator=g).tolist()]
        chosen += order[:take]
        val += order[take : take + round((held_out or 0) * len(idx))]
    return sorted(chosen) if held_out is None else (sorted(chosen), sorted(val))


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
    ev: EncoderEval,
    encoder: nn.Module,
    data: TrainData,
    epochs: int,
    lr: float,
    finetune: bool = False,
    zero_head: bool = False,
    head: nn.Linear | None = None,
) -> nn.Linear:
    """Train a linear head (and, with ``finetune``, ``encoder``) with SGD Nesterov on crop + flip.

    A frozen encoder stays in eval mode (BatchNorm statistics frozen). Cosine decay of ``lr`` to 0.
    ``head`` is where the head starts (trained in place), else a new one, at zero with ``zero_head``:
    a random head's first gradients into a fine-tuned encoder are noise.
    """
    meta, device = ev.meta, ev.device
    torch.manual_seed(ev.seed)
    head = (head or _new_head(meta["feature_dim"], data.num_classes, zero_head)).to(device)
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
            images, crops = batch.on(device)
            x = (
                augment.view(images, CROP_FLIP, g)
                if crops is None
                else augment.view(crops[0], CROP_FLIP, g, crop=False)
            )
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


def _new_head(features: int, classes: int, zero: bool) -> nn.Linear:
    head = nn.Linear(features, classes)
    if zero:
        nn.init.zeros_(head.weight)
        nn.init.zeros_(head.bias)
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
        val_acc[lr] = _held_out_top1(ev, enc, head, data, val_idx.tolist())
    best = max(val_acc, key=lambda lr: (val_acc[lr], -lr))
    enc = copy.deepcopy(ev.encoder).to(ev.device)
    head = train_supervised(ev, enc, data, epochs, best)
    return {**score(ev, enc, head, scored), "lr": best, "val_top1": val_acc[best], "epochs": epochs}


def finetune(
    ev: EncoderEval,
    train: str,
    test: str,
    label_fraction: float,
    epochs: int = 30,
    grid=FINETUNE_GRID,
    batch_size: int = FINETUNE_BATCH_SIZE,
    min_steps: int = FINETUNE_MIN_STEPS,
    val_fraction: float = 0.1,
) -> dict[str, Any]:
    """Semi-supervised: encoder and head fine-tuned on a class-balanced fraction of the labels, the
    (head start, lr) pair of ``grid`` picked on ``val_fraction`` of every class's other train images,
    test once; beside it the linear probe (L-BFGS, frozen features) on the same labels. A head starts
    at ``zeros`` or as that ``probe``. One pair in ``grid``: no choice, no validation."""
    if bad := [h for h, _ in grid if h not in ("probe", "zeros")]:
        raise ByolError(f"a fine-tuning head starts as probe or zeros, not {bad[0]!r}")
    data, scored = _crop_flip_data(ev, train, test, 1)
    labels = [data.labels[i] for i in range(len(data))]
    subset, val = class_balanced_subset(labels, label_fraction, ev.seed, held_out=val_fraction)
    if len(grid) > 1 and not val:
        raise ByolError(f"--label-fraction {label_fraction:g} leaves no labelled images of {train} to choose the "
                        "head start and lr on: pass --lr LR (and --head-start)")  # fmt: skip
    data.batch_size = min(batch_size, len(subset))
    fit = data.restrict(subset)
    epochs = max(epochs, -(-min_steps // fit.batches_per_epoch()))
    probe_head, probe = _probe_on(ev, data, subset, scored)
    tried: dict[str, float] = {}
    best = None  # (val top-1, -lr, head start, lr, encoder, head): the highest, the smaller lr on a tie
    for start, lr in grid:
        enc = copy.deepcopy(ev.encoder).to(ev.device)
        head = copy.deepcopy(probe_head) if start == "probe" else None
        head = train_supervised(ev, enc, fit, epochs, lr, finetune=True, zero_head=True, head=head)
        acc = tried[f"{start} {lr:g}"] = _held_out_top1(ev, enc, head, data, val) if len(grid) > 1 else 0.0
        if best is None or (acc, -lr) > best[:2]:
            best = (acc, -lr, start, lr, enc, head)
    val_top1, _, head_start, lr, enc, head = best
    tried = tried if len(grid) > 1 else {}
    return {
        **score(ev, enc, head, scored), "label_fraction": label_fraction, "labelled_images": len(subset),
        "epochs": epochs, "steps": epochs * fit.batches_per_epoch(), "head_start": head_start, "lr": lr,
        "val_top1": val_top1 if tried else None, "val_images": len(val) if tried else 0, "val_tried": tried,
        "linear_top1": probe["top1"],
    }  # fmt: skip


@torch.no_grad()
def _held_out_top1(ev: EncoderEval, encoder: nn.Module, head: nn.Linear, data: TrainData, val: list[int]) -> float:
    feats, y = extract_features(
        encoder, data.eval_batches(torch.tensor(val)), ev.device, ev.meta["mean"], ev.meta["std"]
    )
    return topk_accuracy(head(feats.to(ev.device)).detach().cpu(), y)["top1"]


def _probe_on(ev: EncoderEval, data: TrainData, subset: list[int], scored: ImageList) -> tuple[nn.Linear, dict]:
    """The linear probe (``fit_probe``: L-BFGS on the frozen encoder's evaluation-view features) fitted
    on the labelled fraction alone, and its test scores."""
    idx = torch.tensor(subset, dtype=torch.long)
    train_x, train_y = extract_features(ev.encoder, data.eval_batches(idx), ev.device, ev.meta["mean"], ev.meta["std"])
    head, _ = fit_probe(train_x, train_y, data.num_classes, seed=ev.seed)
    test_x, test_y = ev.features(scored)
    with torch.no_grad():
        return head, topk_accuracy(head(test_x), test_y)

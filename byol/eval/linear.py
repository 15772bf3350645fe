"""Linear evaluation on frozen features: L2-regularised logistic regression by L-BFGS.

The fast default of ``byol eval linear`` (and the paper's transfer protocol): features computed
once without augmentation, the regularisation picked on a held-out part of the train split, the
classifier refitted on all of it and reported once on the test split (never the best over epochs).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from byol.eval.knn import topk_accuracy

WEIGHT_DECAYS = (0.0, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2)


def moments(train: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each feature's mean and std over the train split (the std at least 1e-6): what ``standardize`` uses."""
    return train.mean(0, keepdim=True), train.std(0, keepdim=True).clamp(min=1e-6)


def standardize(train: torch.Tensor, *others: torch.Tensor) -> list[torch.Tensor]:
    """Centre and scale every feature by the train split's mean and std."""
    mean, std = moments(train)
    return [(x - mean) / std for x in (train, *others)]


def fit_logistic(
    x: torch.Tensor, y: torch.Tensor, num_classes: int, weight_decay: float, max_iter: int = 200
) -> torch.nn.Linear:
    """Multinomial logistic regression with penalty ``weight_decay·‖W‖²``, full-batch L-BFGS."""
    torch.manual_seed(0)
    linear = torch.nn.Linear(x.shape[1], num_classes)
    torch.nn.init.zeros_(linear.weight)
    torch.nn.init.zeros_(linear.bias)
    opt = torch.optim.LBFGS(linear.parameters(), lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(linear(x), y) + weight_decay * linear.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return linear


def _fit_standardized(
    train_x: torch.Tensor, train_y: torch.Tensor, num_classes: int, weight_decays, val_fraction: float, seed: int
) -> tuple[torch.nn.Linear, dict[str, float]]:
    """The penalty picked on a held-out part of train, the classifier refitted on all of it, on features
    standardised by train's mean and std (``standardize``)."""
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(train_x), generator=g)
    n_val = max(1, int(len(perm) * val_fraction))
    val_idx, fit_idx = perm[:n_val], perm[n_val:]
    fx, vx = standardize(train_x[fit_idx], train_x[val_idx])
    val_acc = {}
    for wd in weight_decays:
        clf = fit_logistic(fx, train_y[fit_idx], num_classes, wd)
        with torch.no_grad():
            val_acc[wd] = topk_accuracy(clf(vx), train_y[val_idx], ks=(1,))["top1"]
    best = max(val_acc, key=lambda wd: (val_acc[wd], wd))
    (tx,) = standardize(train_x)
    return fit_logistic(tx, train_y, num_classes, best), {"weight_decay": best, "val_top1": val_acc[best]}


def fit_probe(
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    num_classes: int,
    weight_decays=WEIGHT_DECAYS,
    val_fraction: float = 0.1,
    seed: int = 0,
) -> tuple[torch.nn.Linear, dict[str, float]]:
    """``linear_probe``'s classifier as a linear layer on the raw features (their standardisation folded
    into its weights: W·(x − μ)/σ + b = (W/σ)·x + (b − W·μ/σ)), and the choice made."""
    clf, chosen = _fit_standardized(train_x, train_y, num_classes, weight_decays, val_fraction, seed)
    mean, std = moments(train_x)
    with torch.no_grad():
        clf.weight.div_(std)
        clf.bias.sub_(clf.weight @ mean[0])
    return clf, chosen


def linear_probe(
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    test_x: torch.Tensor,
    test_y: torch.Tensor,
    num_classes: int,
    weight_decays=WEIGHT_DECAYS,
    val_fraction: float = 0.1,
    seed: int = 0,
) -> dict[str, float]:
    """Pick the penalty on a held-out part of train, refit on all of train, score test once."""
    clf, chosen = _fit_standardized(train_x, train_y, num_classes, weight_decays, val_fraction, seed)
    _, sx = standardize(train_x, test_x)
    with torch.no_grad():
        acc = topk_accuracy(clf(sx), test_y)
    return {"top1": acc["top1"], "top5": acc["top5"], **chosen}

"""Weighted kNN classifier on frozen features (Wu et al. 2018; the SSL literature's monitor).

Cosine similarity, the k nearest training features vote for their labels with weight
exp(sim / T); k and T by default ``byol.constants.KNN_K`` and ``KNN_TEMPERATURE`` (200 and 0.1).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from byol.constants import KNN_K, KNN_TEMPERATURE


@torch.no_grad()
def knn_scores(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor,
    k: int = KNN_K,
    temperature: float = KNN_TEMPERATURE,
    num_classes: int | None = None,
    chunk: int = 1024,
) -> torch.Tensor:
    """Class scores ``(N_test, C)`` from the weighted votes of the ``k`` nearest training features."""
    if num_classes is None:
        num_classes = int(train_labels.max()) + 1
    k = min(k, len(train_features))
    bank = F.normalize(train_features.float(), dim=1)
    out = []
    for start in range(0, len(test_features), chunk):
        q = F.normalize(test_features[start : start + chunk].float(), dim=1)
        sim, idx = (q @ bank.T).topk(k, dim=1)  # (n, k)
        weights = (sim / temperature).exp()
        votes = torch.zeros(len(q), num_classes, dtype=weights.dtype, device=weights.device)
        votes.scatter_add_(1, train_labels[idx], weights)
        out.append(votes)
    return torch.cat(out)


def topk_accuracy(scores: torch.Tensor, labels: torch.Tensor, ks=(1, 5)) -> dict[str, float]:
    """Fractions of ``labels`` among the top-k ``scores``, e.g. ``{"top1": 0.5, "top5": 0.9}``."""
    result = {}
    for k in ks:
        k_eff = min(k, scores.shape[1])
        hit = (scores.topk(k_eff, dim=1).indices == labels.view(-1, 1)).any(dim=1)
        result[f"top{k}"] = hit.float().mean().item()
    return result


def knn_accuracy(
    train_features, train_labels, test_features, test_labels, k=KNN_K, temperature=KNN_TEMPERATURE, num_classes=None
):
    """Top-1 and top-5 accuracy of the weighted kNN classifier."""
    if num_classes is None:
        num_classes = int(max(train_labels.max(), test_labels.max())) + 1
    scores = knn_scores(train_features, train_labels, test_features, k, temperature, num_classes)
    return topk_accuracy(scores, test_labels)

"""Loss functions: BYOL's (Grill et al. 2020, eq. 2) and the SimCLR baseline's NT-Xent (Chen et al. 2020, eq. 1)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def regression_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Normalised mean squared error between predictions and target projections.

    For each sample ``‖p/‖p‖ − z/‖z‖‖² = 2 − 2·cos(p, z)``, then the mean over the batch.
    It is 0 for aligned vectors, 4 for opposite ones, and does not depend on their norms.

    Args:
        prediction: online predictions ``q(z)``, shape ``(B, D)``.
        target: target projections ``z'``, shape ``(B, D)``; the caller stops their gradient.

    Returns:
        A scalar tensor.

    Example:
        >>> p = torch.tensor([[1.0, 0.0]])
        >>> float(regression_loss(p, -3 * p))
        4.0
    """
    p = F.normalize(_at_least_fp32(prediction), dim=-1)  # in fp32 (or fp64) even under bf16 autocast
    z = F.normalize(_at_least_fp32(target), dim=-1)
    return (2 - 2 * (p * z).sum(dim=-1)).mean()


def nt_xent_loss(projection_view1: torch.Tensor, projection_view2: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's normalised temperature-scaled cross entropy over the 2B views of a batch.

    For each of the 2B projections the positive is the other view of its image and the 2B − 2
    views of the other images are negatives: ``ℓ(i, j) = −log exp(s_ij/T) / Σ_{k≠i} exp(s_ik/T)``
    with ``s`` the cosine similarity; the mean over all 2B ordered pairs (Chen et al. 2020, alg. 1).

    Args:
        projection_view1, projection_view2: projections ``(B, D)`` of the two views, row i of each
            from the same image.
        temperature: T (SimCLR: 0.5 on CIFAR-10, appendix B.9; 0.1 on ImageNet, table 5).

    Example:
        >>> z = torch.eye(4)
        >>> round(float(nt_xent_loss(z, z, 0.1)), 4)  # aligned pairs, orthogonal negatives
        0.0003
    """
    z = F.normalize(_at_least_fp32(torch.cat([projection_view1, projection_view2])), dim=-1)  # (2B, D)
    n = projection_view1.shape[0]
    logits = z @ z.T / temperature  # (2B, 2B)
    logits = logits.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    positives = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(logits, positives)


def _at_least_fp32(x: torch.Tensor) -> torch.Tensor:
    return x.to(torch.promote_types(x.dtype, torch.float32))

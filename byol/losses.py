"""Loss functions of BYOL (Grill et al. 2020, eq. 2)."""

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


def _at_least_fp32(x: torch.Tensor) -> torch.Tensor:
    return x.to(torch.promote_types(x.dtype, torch.float32))

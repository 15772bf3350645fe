"""Collapse diagnostics of a batch's outputs: how spread the projections are, along how many directions.

A collapsed representation maps every image to (almost) the same vector, or onto (almost) one
direction; BYOL's heads with BatchNorm and its predictor keep it from doing so, the ablations take
them away (``byol ablate``). ``batch_diagnostics`` is what each metrics line reports.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

COLLAPSE_RATIO = 0.1  # projection std × √d below this: the representation has collapsed (healthy ≈ 1)


@torch.no_grad()
def projection_std(projections: torch.Tensor) -> float:
    """Std over the batch of the L2-normalised projections, averaged over dimensions.

    ≈ 1/√d for well-spread outputs, → 0 when every sample maps to the same vector (collapse).
    """
    z = F.normalize(projections.float(), dim=1)
    return z.std(dim=0).mean().item()


@torch.no_grad()
def centred_diagnostics(projections: torch.Tensor) -> dict[str, float]:
    """Collapse diagnostics that tell a shared mean from a collapse, the batch mean taken out first.

    ``projection_std`` normalises the raw outputs, so a batch that varies around a large shared mean
    reads as collapsed. Here:

    - ``centred_std_ratio``: √d × the std over the batch of the L2-normalised centred outputs
      (≈ 1 when they vary; its value for variation along one direction depends on that direction);
    - ``spread``: the RMS distance to the mean over the RMS norm: → 0 when every output is the same
      vector (float noise left around it is normalised away by the ratio, not by this);
    - ``top_share``: the share of the centred variance along the top principal direction: 1/d for
      isotropic outputs, → 1 in a dimensional collapse.
    """
    z = projections.float()
    centred = z - z.mean(dim=0, keepdim=True)
    spread = centred.pow(2).sum(dim=1).mean().sqrt() / z.pow(2).sum(dim=1).mean().sqrt().clamp(min=1e-12)
    ratio = F.normalize(centred, dim=1).std(dim=0).mean() * math.sqrt(z.shape[1])
    variances = torch.linalg.svdvals(centred).pow(2)
    top = variances[0] / variances.sum() if variances.sum() > 0 else torch.tensor(1.0)
    return {"centred_std_ratio": ratio.item(), "spread": spread.item(), "top_share": top.item()}


TOP_SHARE_COLLAPSED, SPREAD_COLLAPSED = 0.9, 0.01


def is_collapsed(diagnostics: dict[str, float]) -> bool:
    """Collapsed by the centred diagnostics: (almost) no spread around the mean, or almost all of it
    along one direction."""
    return diagnostics["spread"] < SPREAD_COLLAPSED or diagnostics["top_share"] > TOP_SHARE_COLLAPSED


@torch.no_grad()
def effective_rank(features: torch.Tensor) -> float:
    """exp(entropy of the normalised singular values) of the centred batch (Roy & Vetterli 2007)."""
    x = features.float()
    x = x - x.mean(dim=0, keepdim=True)
    s = torch.linalg.svdvals(x)
    if s.sum() <= 0:
        return 0.0
    p = s / s.sum()
    p = p[p > 0]
    return math.exp(-(p * p.log()).sum().item())


def batch_diagnostics(representation: torch.Tensor, projection: torch.Tensor) -> dict[str, float]:
    """Every collapse diagnostic of one batch's outputs (on the host), as a metrics line holds them."""
    pstd = projection_std(projection)
    return {
        "projection_std": pstd,
        "projection_std_ratio": pstd * math.sqrt(projection.shape[1]),  # uncentred: a shared mean reads low
        **centred_diagnostics(projection),  # the mean taken out first: centred_std_ratio, spread, top_share
        "effective_rank": effective_rank(representation),
        "projection_rank": effective_rank(projection),  # → 1 when the projections collapse
    }

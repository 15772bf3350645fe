"""Projector and predictor heads: one MLP class whose normalisation is a parameter."""

from __future__ import annotations

from torch import nn

from byol.config.registry import register_choices
from byol.models.norms import ChannelAffine

NORMS = ("batchnorm", "layernorm", "groupnorm", "affine", "none")
register_choices("model.norm", lambda: NORMS)


def make_norm1d(norm: str, dim: int) -> nn.Module:
    """A normalisation layer for ``(B, dim)`` features, by name (see ``NORMS``)."""
    if norm == "batchnorm":
        return nn.BatchNorm1d(dim)
    if norm == "layernorm":
        return nn.LayerNorm(dim)
    if norm == "groupnorm":
        return nn.GroupNorm(min(32, dim), dim)
    if norm == "affine":  # a learned scale and shift per feature, no statistics (set on the first batch by bn-mimic)
        return ChannelAffine(dim)
    if norm == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {norm!r}; choose one of {', '.join(NORMS)}")


class MLP(nn.Sequential):
    """Linear(in → hidden) → norm → ReLU → Linear(hidden → out), no norm on the output (``output_norm``:
    BatchNorm there, an ablation).

    BYOL's projector and predictor (Grill et al. 2020, §3.3): "a linear layer with output size
    4096 followed by batch normalization, rectified linear units (ReLU), and a final linear layer
    with output dimension 256". The norm is a parameter because the ablations swap it.

    Example:
        >>> import torch
        >>> MLP(512, 4096, 256)(torch.randn(8, 512)).shape
        torch.Size([8, 256])
    """

    def __init__(
        self,
        in_dim: int,
        hidden_dim: int = 4096,
        out_dim: int = 256,
        norm: str = "batchnorm",
        output_norm: bool = False,
    ):
        # As the official release (haiku's MLP): a bias on the first Linear, none on the last.
        layers = [nn.Linear(in_dim, hidden_dim), make_norm1d(norm, hidden_dim), nn.ReLU(inplace=True)]
        layers.append(nn.Linear(hidden_dim, out_dim, bias=False))
        super().__init__(*layers, *([nn.BatchNorm1d(out_dim)] if output_norm else []))


class SimCLRProjector(nn.Sequential):
    """SimCLR's projection head g (Chen et al. 2020): Linear(d → d) → BN → ReLU → Linear(d → 128) → BN,
    the hidden width the encoder's (2048 for ResNet-50), BatchNorm on the output as their code has it."""

    def __init__(self, in_dim: int, out_dim: int = 128):
        super().__init__(
            nn.Linear(in_dim, in_dim, bias=False),
            nn.BatchNorm1d(in_dim),
            nn.ReLU(inplace=True),
            nn.Linear(in_dim, out_dim, bias=False),
            nn.BatchNorm1d(out_dim),
        )

"""BYOL: Bootstrap Your Own Latent (Grill et al. 2020, arXiv 2006.07733).

Two networks see two augmented views of each image. The *online* network is
encoder → projector → predictor; the *target* network is encoder → projector, its weights an
exponential moving average of the online ones, and it receives no gradient. The online network
predicts the target's projection of the other view; the loss is the squared distance of the
L2-normalised vectors, summed over both view orders:

    L = ℓ(q(z_1), sg(z'_2)) + ℓ(q(z_2), sg(z'_1)),   ℓ(p, z) = 2 − 2·cos(p, z)

After each optimiser step: θ' ← τ·θ' + (1 − τ)·θ  (``update_target``).

The loop's two calls (``byol.method.base.Method``): ``forward(view1, view2)`` and ``after_step(tau)``.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from byol.losses import regression_loss
from byol.method.base import Heads, MethodOutput
from byol.models.heads import MLP


class BYOL(nn.Module):
    """The online and target networks of BYOL and its loss.

    Args:
        encoder: any module mapping images ``(B, 3, H, W)`` to features ``(B, feature_dim)``.
        feature_dim: size of the encoder's output.
        projector_hidden: hidden width of projector g (4096 in the paper).
        projection_dim: output size of projector and predictor (256).
        predictor_hidden: hidden width of predictor q (4096).
        norm: normalisation inside both heads (``"batchnorm"``; the ablations use others).
        use_predictor: without a predictor BYOL collapses (paper table 5); for ablations only.
        projector_output_norm: BatchNorm on the projector's output (online and target); for ablations only.
    """

    def __init__(
        self,
        encoder: nn.Module,
        feature_dim: int,
        projector_hidden: int = 4096,
        projection_dim: int = 256,
        predictor_hidden: int = 4096,
        norm: str = "batchnorm",
        use_predictor: bool = True,
        projector_output_norm: bool = False,
    ):
        super().__init__()
        self.online_encoder = encoder
        self.online_projector = MLP(feature_dim, projector_hidden, projection_dim, norm, projector_output_norm)
        self.predictor = MLP(projection_dim, predictor_hidden, projection_dim, norm) if use_predictor else nn.Identity()
        # The target starts as an exact copy of the online encoder and projector.
        self.target_encoder = copy.deepcopy(self.online_encoder)
        self.target_projector = copy.deepcopy(self.online_projector)
        for p in self.target_parameters():
            p.requires_grad_(False)
        self.feature_dim = feature_dim

    @property
    def encoder(self) -> nn.Module:
        """The encoder being trained: what users keep (``Method.encoder``)."""
        return self.online_encoder

    def trained_modules(self) -> list[nn.Module]:
        """What the optimiser trains (the target is moved by ``update_target`` only)."""
        return [self.online_encoder, self.online_projector, self.predictor]

    def online_parameters(self) -> list[nn.Parameter]:
        """Parameters the target averages, in the same order as ``target_parameters``."""
        return [*self.online_encoder.parameters(), *self.online_projector.parameters()]

    def target_parameters(self) -> list[nn.Parameter]:
        return [*self.target_encoder.parameters(), *self.target_projector.parameters()]

    def forward(self, view1: torch.Tensor, view2: torch.Tensor) -> MethodOutput:
        """Symmetrised BYOL loss for two batches of views of the same images (``.loss``), with what the
        monitors read.

        Each view is its own batch, so BatchNorm statistics are per view (as the official code).
        """
        representation_view1 = self.online_encoder(view1)  # (B, feature_dim)
        projection_view1 = self.online_projector(representation_view1)  # (B, projection_dim)
        prediction_view1 = self.predictor(projection_view1)
        projection_view2 = self.online_projector(self.online_encoder(view2))
        prediction_view2 = self.predictor(projection_view2)

        with torch.no_grad():  # stop-gradient: the target is moved only by update_target
            target_projection_view1 = self.target_projector(self.target_encoder(view1))
            target_projection_view2 = self.target_projector(self.target_encoder(view2))

        # The two view orders are summed, not averaged (averaging halves the gradient).
        loss = regression_loss(prediction_view1, target_projection_view2) + regression_loss(
            prediction_view2, target_projection_view1
        )
        return MethodOutput(loss, representation_view1, projection_view1)

    def after_step(self, tau: float) -> None:
        """What the training loop calls after each optimiser step: BYOL moves its target."""
        self.update_target(tau)

    @torch.no_grad()
    def update_target(self, tau: float) -> None:
        """θ' ← τ·θ' + (1 − τ)·θ over parameters only, in one multi-tensor call.

        Buffers (BatchNorm running statistics) are the target's own, from its own forward passes.
        """
        target, online = self.target_parameters(), self.online_parameters()
        torch._foreach_lerp_(target, [p.detach() for p in online], 1.0 - tau)


def build_byol(heads: Heads, options: None, encoder: nn.Module, feature_dim: int) -> BYOL:
    """BYOL around ``encoder`` with ``heads``; it has no options of its own (no ``methods`` section)."""
    h = heads
    return BYOL(encoder, feature_dim, h.projector_hidden, h.projection_dim, h.predictor_hidden, h.norm, h.use_predictor,
                h.projector_output_norm)  # fmt: skip

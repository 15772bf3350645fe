"""BYOL: Bootstrap Your Own Latent (Grill et al. 2020, arXiv 2006.07733).

Two networks see two augmented views of each image. The *online* network is
encoder → projector → predictor; the *target* network is encoder → projector, its weights an
exponential moving average of the online ones, and it receives no gradient. The online network
predicts the target's projection of the other view; the loss is the squared distance of the
L2-normalised vectors, summed over both view orders:

    L = ℓ(q(z_1), sg(z'_2)) + ℓ(q(z_2), sg(z'_1)),   ℓ(p, z) = 2 − 2·cos(p, z)

After each optimiser step: θ' ← τ·θ' + (1 − τ)·θ  (``update_target``).

A training loop needs two calls of a method module (the ``Method`` protocol): ``forward(view1,
view2)`` for the loss and ``after_step(tau)`` after the optimiser step. ``SimCLR`` (Chen et al.
2020), the contrastive baseline of the paper's comparisons, plugs into the same loop with the same
two calls: same encoder, projector and views, no predictor and no target, NT-Xent in place of the
regression loss.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn

from byol.losses import nt_xent_loss, regression_loss
from byol.models.heads import MLP, SimCLRProjector


@dataclass
class MethodOutput:
    """What one forward pass computed, for logging and monitoring."""

    loss: torch.Tensor  # scalar, summed over both view orders
    representation_view1: torch.Tensor  # (B, feature_dim) online encoder output
    projection_view1: torch.Tensor  # (B, projection_dim) online projection
    projection_view2: torch.Tensor  # (B, projection_dim)


BYOLOutput = MethodOutput  # the name it had first


@runtime_checkable
class Method(Protocol):
    """What the loop, the checkpoints and the exporters ask of a method module (``BYOL``, ``SimCLR``),
    besides being an ``nn.Module`` (its ``state_dict`` is the checkpoint's ``model``)."""

    feature_dim: int  # size of the encoder's output
    online_encoder: nn.Module  # the encoder being trained: the part users keep

    @property
    def encoder(self) -> nn.Module: ...

    def trained_modules(self) -> list[nn.Module]:
        """What the optimiser trains."""
        ...

    def forward(self, view1: torch.Tensor, view2: torch.Tensor, return_outputs: bool = False):
        """The loss of two views' batches, or a ``MethodOutput`` with ``return_outputs``."""
        ...

    def after_step(self, tau: float) -> None:
        """Called once after every optimiser step (BYOL moves its target by τ)."""
        ...


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
    ):
        super().__init__()
        self.online_encoder = encoder
        self.online_projector = MLP(feature_dim, projector_hidden, projection_dim, norm)
        self.predictor = MLP(projection_dim, predictor_hidden, projection_dim, norm) if use_predictor else nn.Identity()
        # The target starts as an exact copy of the online encoder and projector.
        self.target_encoder = copy.deepcopy(self.online_encoder)
        self.target_projector = copy.deepcopy(self.online_projector)
        for p in self.target_parameters():
            p.requires_grad_(False)
        self.feature_dim = feature_dim

    @property
    def encoder(self) -> nn.Module:
        """The online encoder: the part users keep."""
        return self.online_encoder

    def trained_modules(self) -> list[nn.Module]:
        """What the optimiser trains (the target is moved by ``update_target`` only)."""
        return [self.online_encoder, self.online_projector, self.predictor]

    def online_parameters(self) -> list[nn.Parameter]:
        """Parameters the target averages, in the same order as ``target_parameters``."""
        return [*self.online_encoder.parameters(), *self.online_projector.parameters()]

    def target_parameters(self) -> list[nn.Parameter]:
        return [*self.target_encoder.parameters(), *self.target_projector.parameters()]

    def forward(self, view1: torch.Tensor, view2: torch.Tensor, return_outputs: bool = False):
        """Symmetrised BYOL loss for two batches of views of the same images.

        Each view is its own batch, so BatchNorm statistics are per view (as the official code).
        Returns the scalar loss, or a ``MethodOutput`` when ``return_outputs`` is set.
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
        if not return_outputs:
            return loss
        return MethodOutput(loss, representation_view1, projection_view1, projection_view2)

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


class SimCLR(nn.Module):
    """SimCLR (Chen et al. 2020), BYOL's contrastive baseline: one network, encoder → projector,
    both views through it, NT-Xent over the batch (``losses.nt_xent_loss``). Same encoder, projector
    and augmentations as BYOL here, so the loss is the one difference; negatives are those of this
    process's batch.

    Args:
        encoder, feature_dim, projector_hidden, projection_dim, norm: as ``BYOL``'s.
        temperature: NT-Xent's T.
        recipe: ``byol`` (BYOL's projector) or ``paper`` (SimCLR's ``SimCLRProjector``; its views and
            temperature are the config's, set by ``presets.simclr_paper_views``).
    """

    def __init__(
        self,
        encoder: nn.Module,
        feature_dim: int,
        projector_hidden: int = 4096,
        projection_dim: int = 256,
        norm: str = "batchnorm",
        temperature: float = 0.5,
        recipe: str = "byol",
    ):
        super().__init__()
        self.online_encoder = encoder
        # "byol": BYOL's projector (NT-Xent in BYOL's pipeline); "paper": SimCLR's own head, to 128-d.
        paper = recipe == "paper"
        self.online_projector = (
            SimCLRProjector(feature_dim) if paper else MLP(feature_dim, projector_hidden, projection_dim, norm)
        )
        self.feature_dim, self.temperature = feature_dim, temperature

    @property
    def encoder(self) -> nn.Module:
        return self.online_encoder

    def trained_modules(self) -> list[nn.Module]:
        return [self.online_encoder, self.online_projector]

    def forward(self, view1: torch.Tensor, view2: torch.Tensor, return_outputs: bool = False):
        representation_view1 = self.online_encoder(view1)  # (B, feature_dim)
        projection_view1 = self.online_projector(representation_view1)  # (B, projection_dim)
        projection_view2 = self.online_projector(self.online_encoder(view2))
        loss = nt_xent_loss(projection_view1, projection_view2, self.temperature)
        if not return_outputs:
            return loss
        return MethodOutput(loss, representation_view1, projection_view1, projection_view2)

    def after_step(self, tau: float) -> None:
        """Nothing to move: SimCLR has no target."""


def _byol(m, encoder: nn.Module, feature_dim: int) -> BYOL:
    return BYOL(encoder, feature_dim, m.projector_hidden, m.projection_dim, m.predictor_hidden, m.norm, m.use_predictor)


def _simclr(m, encoder: nn.Module, feature_dim: int) -> SimCLR:
    return SimCLR(encoder, feature_dim, m.projector_hidden, m.projection_dim, m.norm, m.temperature, m.simclr_recipe)


SIMCLR_RECIPES = ("byol", "paper")  # model.simclr_recipe: BYOL's pipeline, or SimCLR's own head and views

# The methods ``model.method`` (``--method``) can name: name -> builder(model config, encoder, feature_dim).
# A new method is a module satisfying ``Method`` and one line here.
METHODS: dict[str, Callable[[Any, nn.Module, int], Method]] = {"byol": _byol, "simclr": _simclr}


def build_method(model_cfg, encoder: nn.Module, feature_dim: int) -> Method:
    """The method module that ``model_cfg.method`` names, around ``encoder``."""
    return METHODS[model_cfg.method](model_cfg, encoder, feature_dim)

"""What a training loop asks of a self-supervised method, and what one forward pass gives back.

A training loop needs two calls of a method module (the ``Method`` protocol): ``forward(view1,
view2)``, whose ``MethodOutput`` holds the loss and what the monitors read, and ``after_step(tau)``
after the optimiser step. ``byol.method.registry`` names the methods ``model.method`` can be.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
from torch import nn


@dataclass
class MethodOutput:
    """What one forward pass computed: the loss, and what the monitors read."""

    loss: torch.Tensor  # scalar, summed over both view orders
    representation_view1: torch.Tensor  # (B, feature_dim) online encoder output: the online classifier's input
    projection_view1: torch.Tensor  # (B, projection_dim) online projection: the collapse diagnostics'


@dataclass(frozen=True)
class Heads:
    """The heads a method puts on its encoder (BYOL's projector and predictor; SimCLR's projector), as
    ``model.*`` sets them: Linear(d → hidden) → norm → ReLU → Linear(hidden → projection_dim)."""

    projector_hidden: int = 4096
    projection_dim: int = 256
    predictor_hidden: int = 4096
    norm: str = "batchnorm"
    use_predictor: bool = True  # the ablation without a predictor (BYOL only)
    projector_output_norm: bool = False  # the ablation with BatchNorm on the projector's output (BYOL only)


@runtime_checkable
class Method(Protocol):
    """What the loop, the checkpoints and the exporters ask of a method module (``BYOL``, ``SimCLR``),
    besides being an ``nn.Module`` (its ``state_dict`` is the checkpoint's ``model``)."""

    feature_dim: int  # size of the encoder's output

    @property
    def encoder(self) -> nn.Module:
        """The encoder being trained: the part users keep (each method names its own attribute; BYOL's
        and SimCLR's is ``online_encoder``, the prefix of its weights in a checkpoint)."""
        ...

    def trained_modules(self) -> list[nn.Module]:
        """What the optimiser trains."""
        ...

    def forward(self, view1: torch.Tensor, view2: torch.Tensor) -> MethodOutput:
        """The loss of two views' batches, and what the monitors read."""
        ...

    def after_step(self, tau: float) -> None:
        """Called once after every optimiser step (BYOL moves its target by τ)."""
        ...

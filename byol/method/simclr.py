"""SimCLR (Chen et al. 2020), the contrastive baseline of BYOL's comparisons, with its own options.

It plugs into the same loop with the same two calls as BYOL: same encoder, projector and views, no
predictor and no target, NT-Xent in place of the regression loss. Its options live here
(``SimCLROptions``: the config's ``methods.simclr`` section, ``--temperature``, ``--simclr-recipe``),
and ``recipe: paper`` brings SimCLR's own views (``paper_views``, applied when a config is resolved).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from byol.config.registry import option
from byol.constants import is_small
from byol.losses import nt_xent_loss
from byol.method.base import Heads, MethodOutput
from byol.models.heads import MLP, SimCLRProjector

SIMCLR_RECIPES = ("byol", "paper")  # methods.simclr.recipe: BYOL's pipeline, or SimCLR's own head and views


@dataclass
class SimCLROptions:
    """SimCLR's options: the config's ``methods.simclr`` section (its docstrings are ``--help``'s)."""

    SECTION: ClassVar[str] = "methods.simclr"

    temperature: float = option(0.5, flag="--temperature")
    """SimCLR's NT-Xent temperature: 0.5 for CIFAR-10 (Chen et al. 2020, appendix B.9), 0.1 for ImageNet (table 5)."""
    recipe: str = option("byol", flag="--simclr-recipe")
    """byol (NT-Xent in BYOL's pipeline: BYOL's projector and asymmetric views) or paper (SimCLR's own: a
    2-layer projector to 128-d with BatchNorm, symmetric views at colour strength 1, no solarisation)."""

    def check(self, require: Callable[[str, bool, str], None]) -> None:
        """Each option through ``require(key, ok, rule)`` (a one-line error naming its flag)."""
        require("temperature", self.temperature > 0, "positive")
        require("recipe", self.recipe in SIMCLR_RECIPES, "one of " + ", ".join(SIMCLR_RECIPES))


class SimCLR(nn.Module):
    """SimCLR (Chen et al. 2020), BYOL's contrastive baseline: one network, encoder → projector,
    both views through it, NT-Xent over the batch (``losses.nt_xent_loss``). Same encoder, projector
    and augmentations as BYOL here, so the loss is the one difference; negatives are those of this
    process's batch.

    The head's sizes, norm, temperature and recipe are keyword arguments.

    Args:
        encoder: any module mapping images ``(B, 3, H, W)`` to features ``(B, feature_dim)``, as ``BYOL``'s.
        feature_dim: size of the encoder's output.
        recipe: ``byol`` (BYOL's projector) or ``paper`` (SimCLR's ``SimCLRProjector``; its views and
            temperature are the config's, set by ``paper_views``).
        temperature: NT-Xent's T.
        projector_hidden: hidden width of the projector (BYOL's projector; 4096).
        projection_dim: output size of the projector (256).
        norm: normalisation inside the projector (``"batchnorm"``).
    """

    def __init__(
        self,
        encoder: nn.Module,
        feature_dim: int,
        *,
        recipe: str = "byol",
        temperature: float = 0.5,
        projector_hidden: int = 4096,
        projection_dim: int = 256,
        norm: str = "batchnorm",
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
        """The encoder being trained: what users keep (``Method.encoder``)."""
        return self.online_encoder

    def trained_modules(self) -> list[nn.Module]:
        return [self.online_encoder, self.online_projector]

    def forward(self, view1: torch.Tensor, view2: torch.Tensor) -> MethodOutput:
        representation_view1 = self.online_encoder(view1)  # (B, feature_dim)
        projection_view1 = self.online_projector(representation_view1)  # (B, projection_dim)
        projection_view2 = self.online_projector(self.online_encoder(view2))
        loss = nt_xent_loss(projection_view1, projection_view2, self.temperature)
        return MethodOutput(loss, representation_view1, projection_view1)

    def after_step(self, tau: float) -> None:
        """Nothing to move: SimCLR has no target."""


def build_simclr(heads: Heads, options: SimCLROptions, encoder: nn.Module, feature_dim: int) -> SimCLR:
    """SimCLR around ``encoder`` with the projector of ``heads`` (no predictor) and its own options."""
    head = {"projector_hidden": heads.projector_hidden, "projection_dim": heads.projection_dim, "norm": heads.norm}
    return SimCLR(encoder, feature_dim, **head, temperature=options.temperature, recipe=options.recipe)


# SimCLR's augmentation (Chen et al. 2020, appendix A): colour jitter at strength s = 1 (0.8, 0.8, 0.8,
# 0.2) with p 0.8, grayscale 0.2, blur 0.5 (none on CIFAR), no solarisation; the same for both views.
SIMCLR_VIEW = {"brightness": 0.8, "contrast": 0.8, "saturation": 0.8, "hue": 0.2, "jitter_p": 0.8,
               "grayscale_p": 0.2, "blur_p": 0.5, "solarize_p": 0.0}  # fmt: skip


def paper_views(values: dict[str, Any], keep: set[str] = frozenset()) -> dict[str, Any]:
    """``values`` (a config as a dict) with SimCLR's symmetric views when it asks for SimCLR's own
    recipe; the crop of each view stays, blur stays off for small images, views named in ``keep`` stay."""
    recipe = values.get("methods", {}).get("simclr", {}).get("recipe")
    if values.get("model", {}).get("method") != "simclr" or recipe != "paper":
        return values
    augment = dict(values.get("augment", {}))
    small = is_small(values.get("data", {}).get("image_size", 224))
    for name in ("view1", "view2"):
        if name not in keep:
            view = {k: v for k, v in augment.get(name, {}).items() if k in ("crop_scale", "crop_ratio", "flip_p")}
            augment[name] = {**view, **SIMCLR_VIEW, **({"blur_p": 0.0} if small else {})}
    return {**values, "augment": augment}

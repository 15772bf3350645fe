"""lightly's BYOL, built from lightly's own modules: the peer every benchmark here measures byol against.

One home for the peer's model, step and views (``step.py``, ``epoch.py`` and ``vs_lightly.py`` use it),
after lightly 1.6's documented CIFAR-10 benchmark (docs/source/getting_started/benchmarks/
cifar10_benchmark.py in lightly's repository): ``BYOLProjectionHead`` / ``BYOLPredictionHead``,
``NegativeCosineSimilarity`` averaged over the two view orders, ``update_momentum`` on backbone and
projector, ``BYOLTransform`` with per-view probabilities. The backbone is byol's own (the same
architecture on both sides), so a comparison measures the recipe and the pipeline, not the network.

lightly is a benchmark-only extra (``pip install -e '.[bench]'``): import this module only after
checking ``available()``.
"""

from __future__ import annotations

import copy
import importlib.util

import torch
from torch import nn


def available() -> bool:
    return importlib.util.find_spec("lightly") is not None


class PeerBYOL(nn.Module):
    """lightly's ``BYOLModel`` (its CIFAR-10 benchmark) around ``backbone`` (a module giving ``(B, D)``)."""

    def __init__(self, backbone: nn.Module, feature_dim: int, hidden: int, projection_dim: int, predictor_hidden=None):
        from lightly.models.modules import BYOLPredictionHead, BYOLProjectionHead
        from lightly.models.utils import deactivate_requires_grad

        super().__init__()
        self.backbone = backbone
        self.projection_head = BYOLProjectionHead(feature_dim, hidden, projection_dim)
        self.prediction_head = BYOLPredictionHead(projection_dim, predictor_hidden or hidden, projection_dim)
        self.backbone_momentum = copy.deepcopy(self.backbone)
        self.projection_head_momentum = copy.deepcopy(self.projection_head)
        deactivate_requires_grad(self.backbone_momentum)
        deactivate_requires_grad(self.projection_head_momentum)

    def forward(self, x):
        return self.prediction_head(self.projection_head(self.backbone(x).flatten(start_dim=1)))

    def forward_momentum(self, x):
        return self.projection_head_momentum(self.backbone_momentum(x).flatten(start_dim=1)).detach()

    def online_parameters(self) -> list[nn.Parameter]:
        """What lightly's ``configure_optimizers`` hands SGD: backbone, projector and predictor."""
        return [*self.backbone.parameters(), *self.projection_head.parameters(), *self.prediction_head.parameters()]

    def training_step(self, x0: torch.Tensor, x1: torch.Tensor, momentum: float, criterion) -> torch.Tensor:
        """lightly's ``training_step``: momentum update first, then ½(l(p0, z1) + l(p1, z0)); returns the loss.

        ``self.last`` keeps view 0's online representation and projection (detached) for diagnostics.
        """
        from lightly.models.utils import update_momentum

        update_momentum(self.backbone, self.backbone_momentum, m=momentum)
        update_momentum(self.projection_head, self.projection_head_momentum, m=momentum)
        y0 = self.backbone(x0).flatten(start_dim=1)  # = self(x0), its parts kept
        proj0 = self.projection_head(y0)
        p0, z0 = self.prediction_head(proj0), self.forward_momentum(x0)
        p1, z1 = self(x1), self.forward_momentum(x1)
        self.last = (y0.detach(), proj0.detach())
        return 0.5 * (criterion(p0, z1) + criterion(p1, z0))


def peer_transform(size: int, view1, view2):
    """lightly's ``BYOLTransform`` with the probabilities of byol's ``ViewParams`` (blur off for CIFAR)."""
    from lightly.transforms.byol_transform import BYOLTransform, BYOLView1Transform, BYOLView2Transform

    def view(cls, p):
        return cls(
            input_size=size, min_scale=p.crop_scale[0], gaussian_blur=p.blur_p, solarization_prob=p.solarize_p,
            cj_prob=p.jitter_p, random_gray_scale=p.grayscale_p, hf_prob=p.flip_p,
        )  # fmt: skip

    return BYOLTransform(view(BYOLView1Transform, view1), view(BYOLView2Transform, view2))

"""The online linear classifier: trained beside BYOL on detached representations, to watch it learn."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from byol.optim import fused_kernels, with_kernels_of


class OnlineClassifier(nn.Module):
    """Linear classifier on detached representations, trained beside BYOL only to monitor it.

    The official release does the same; its gradient never reaches the encoder.
    """

    def __init__(self, feature_dim: int, num_classes: int, lr: float = 1e-3, device: torch.device | str = "cpu"):
        super().__init__()
        self.linear = nn.Linear(feature_dim, num_classes, device=device)
        # Fused: one kernel per step instead of a dozen (it runs at every training step).
        fused = fused_kernels(self.linear.parameters())
        self.optimizer = torch.optim.AdamW(self.linear.parameters(), lr=lr, weight_decay=0.0, fused=fused)

    def step(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """One update; returns the number of correct predictions (a tensor, no host sync)."""
        logits = self.linear(features.detach().float())
        loss = F.cross_entropy(logits, labels)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return (logits.argmax(dim=1) == labels).sum()

    def state(self) -> dict[str, Any]:
        return {"linear": self.linear.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load(self, state: dict[str, Any]) -> None:
        self.linear.load_state_dict(state["linear"], strict=True)
        self.optimizer.load_state_dict(with_kernels_of(self.optimizer, state["optimizer"]))

"""Watching a run: collapse diagnostics, the online linear classifier, metrics to JSONL and TensorBoard."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

log = logging.getLogger(__name__)

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


class OnlineClassifier(nn.Module):
    """Linear classifier on detached representations, trained beside BYOL only to monitor it.

    The official release does the same; its gradient never reaches the encoder.
    """

    def __init__(self, feature_dim: int, num_classes: int, lr: float = 1e-3, device: torch.device | str = "cpu"):
        super().__init__()
        self.linear = nn.Linear(feature_dim, num_classes, device=device)
        # Fused on a GPU: one kernel per step instead of a dozen (it runs at every training step).
        fused = True if self.linear.weight.is_cuda else None
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
        self.optimizer.load_state_dict(state["optimizer"])


class MetricsLogger:
    """Appends metrics to ``RUN_DIR/metrics.jsonl`` and TensorBoard (``RUN_DIR/tb``) on the main rank only."""

    def __init__(self, run_dir: Path, enabled: bool = True, tensorboard: bool = True):
        self.enabled = enabled
        self.path = Path(run_dir) / "metrics.jsonl"
        self.writer = None
        if enabled and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(str(Path(run_dir) / "tb"))
            except ImportError:  # tensorboard is a dependency, but a trimmed install must still train
                log.warning("tensorboard is not installed; metrics go to metrics.jsonl only")

    def log(self, step: int, values: dict[str, Any]) -> None:
        if not self.enabled:
            return
        record = {"step": step, **values}
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        if self.writer is not None:
            for k, v in values.items():
                if isinstance(v, int | float) and not isinstance(v, bool):
                    self.writer.add_scalar(k, v, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

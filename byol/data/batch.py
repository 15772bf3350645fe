"""What one training step consumes (``Batch``): the ground floor of the data seam, shared by every
source, the loop, the memory probe and the evaluation protocols."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Batch:
    """Whole uint8 images (cropped on the device: ``of_images``) or two uint8 crops of each image
    (cropped where they were decoded: ``of_crops``), with labels (-1 or None when unlabelled) and the
    source's indices of its images."""

    images: torch.Tensor | None  # (B, 3, H, W) uint8
    crops: tuple[torch.Tensor, torch.Tensor] | None  # two (B, 3, S, S) uint8
    labels: torch.Tensor | None  # (B,) int64, -1 when unlabelled
    indices: torch.Tensor

    @classmethod
    def of_images(
        cls, images: torch.Tensor, labels: torch.Tensor | None = None, indices: torch.Tensor | None = None
    ) -> Batch:
        """Whole uint8 images (a cached source's, a user's DataLoader's, the memory probe's)."""
        return cls(images, None, labels, torch.arange(len(images)) if indices is None else indices)

    @classmethod
    def of_crops(
        cls,
        first: torch.Tensor,
        second: torch.Tensor,
        labels: torch.Tensor | None = None,
        indices: torch.Tensor | None = None,
    ) -> Batch:
        """Two crops of each image, made where the images were decoded (streamed folders, tar shards)."""
        return cls(None, (first, second), labels, torch.arange(len(first)) if indices is None else indices)

    def __len__(self) -> int:
        return len(self.images if self.images is not None else self.crops[0])

    def on(self, device: torch.device) -> tuple[torch.Tensor | None, tuple[torch.Tensor, ...] | None]:
        """``(images, None)`` or ``(None, crops)`` moved to ``device``: the one reader of the union,
        for the two that augment a batch (``byol.train.engine.make_views``, the supervised protocols)."""
        if self.images is not None:
            return self.images.to(device, non_blocking=True), None
        return None, tuple(c.to(device, non_blocking=True) for c in self.crops)

    def split(self, parts: int) -> list[Batch]:
        """``parts`` batches of near-equal size (differing by at most one image), in order."""
        if parts == 1:
            return [self]

        def cut(t):
            return [None] * parts if t is None else torch.tensor_split(t, parts)

        crops = zip(*(torch.tensor_split(c, parts) for c in self.crops)) if self.crops else [None] * parts
        return [Batch(*p) for p in zip(cut(self.images), crops, cut(self.labels), cut(self.indices))]

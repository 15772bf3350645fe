"""Streamed training images: each sample cropped twice (uint8) in a DataLoader worker, then batched."""

from __future__ import annotations

import logging

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from byol.data.augment import ViewParams, sample_crop_boxes
from byol.data.folder import UNREADABLE, ImageList
from byol.data.seeding import seeded_generator
from byol.errors import ByolError

log = logging.getLogger(__name__)


class TwoCropDataset(Dataset):
    """Streams images of any size: two per-sample random resized crops to ``size``, uint8.

    Items are addressed as ``(epoch, index)`` so crops depend on the seed, not on the worker. An
    unreadable file is replaced by the next readable one (in folder order), so a batch keeps its
    size (under torchrun every rank then counts the same steps); the item names the files it skipped.
    """

    MAX_SUBSTITUTES = 100  # consecutive unreadable files before giving up on an item

    def __init__(self, images: ImageList, size: int, view1: ViewParams, view2: ViewParams, seed: int):
        self.images, self.size, self.views, self.seed = images, size, (view1, view2), seed

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, key: tuple[int, int]):
        epoch, index = key
        bad: list[str] = []
        for _ in range(self.MAX_SUBSTITUTES):
            try:
                img = self.images.open(index)
                break
            except UNREADABLE:
                bad.append(str(self.images.paths[index]))
                index = (index + 1) % len(self.images)
        else:
            raise ByolError(f"{len(bad)} unreadable images in a row in {self.images.root}, from {bad[0]}")
        label = -1 if self.images.labels is None else self.images.labels[index]
        g = seeded_generator(self.seed, epoch, index, 29)
        return (
            crop_view(img, self.size, self.views[0], g),
            crop_view(img, self.size, self.views[1], g),
            label,
            index,
            bad,
        )


def crop_view(img: Image.Image, size: int, p: ViewParams, g: torch.Generator) -> torch.Tensor:
    """A random resized crop of ``img`` to ``size`` (bicubic, as the paper), drawn from ``g``: uint8 CHW."""
    top, left, h, w = sample_crop_boxes(1, img.height, img.width, p.crop_scale, p.crop_ratio, g)[0].tolist()
    out = img.resize((size, size), Image.BICUBIC, box=(left, top, left + w, top + h))
    return torch.from_numpy(np.asarray(out, dtype=np.uint8).copy()).permute(2, 0, 1)


def collate_crops(items):
    c1, c2, labels, idx, bad = zip(*items)
    return torch.stack(c1), torch.stack(c2), torch.tensor(labels), torch.tensor(idx), [p for b in bad for p in b]

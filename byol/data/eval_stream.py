"""Evaluation batches: every image's centre view, through the cache or DataLoader workers."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from byol.constants import default_workers
from byol.data.cache import load_cached, uses_cache
from byol.data.folder import ImageList, warn_skipped

log = logging.getLogger(__name__)


def eval_images(
    images: ImageList,
    size: int,
    crop: float = 1.0,
    cache_dir: str | Path | None = None,
    workers: int | None = None,
    batch_size: int = 512,
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Evaluation batches: uint8 ``(B, 3, size, size)`` views, labels, indices.

    Every image becomes ``center_view(image, size, crop)`` (``byol.data.folder``), whichever path
    reads it: small images through the cache, others decoded in DataLoader workers. Indices point
    into ``images``: they tell which files were readable, in order. Unreadable files are skipped
    with one warning.
    """
    workers = default_workers() if workers is None else workers
    if uses_cache(images, size):
        array, kept = load_cached(images, size, cache_dir, workers=max(workers, 2), crop=crop)
        labels = torch.tensor([images.labels[i] for i in kept] if images.labels else [-1] * len(kept))
        kept_t = torch.tensor(kept, dtype=torch.long)
        for s in range(0, len(kept), batch_size):
            chunk = torch.from_numpy(np.array(array[s : s + batch_size])).permute(0, 3, 1, 2)
            yield chunk, labels[s : s + batch_size], kept_t[s : s + batch_size]
        return
    dataset = _EvalDataset(images, size, crop)
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers, collate_fn=_collate_eval)
    skipped: list[Path] = []
    for imgs, labels, idx, bad in loader:
        skipped += bad
        if imgs is not None:
            yield imgs, labels, idx
    warn_skipped(skipped, len(images))


class _EvalDataset(Dataset):
    def __init__(self, images: ImageList, size: int, crop: float):
        self.images, self.size, self.crop = images, size, crop

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        path = self.images.paths[i]
        label = -1 if self.images.labels is None else self.images.labels[i]
        view = self.images.view(i, self.size, self.crop)
        if view is None:
            return None, label, i, path
        return torch.from_numpy(view.copy()).permute(2, 0, 1), label, i, None


def _collate_eval(items):
    good = [(x, y, i) for x, y, i, _ in items if x is not None]
    bad = [p for x, _, _, p in items if x is None]
    if not good:
        return None, None, None, bad
    xs, ys, idx = zip(*good)
    return torch.stack(xs), torch.tensor(ys), torch.tensor(idx), bad

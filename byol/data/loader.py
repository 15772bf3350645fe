"""Training and evaluation batches from an image folder.

Small images come from the in-memory uint8 cache and are cropped batched on the device; larger
images stream through DataLoader workers, each cropped twice per sample (uint8) before batching.
The order of an epoch and every crop are functions of (seed, epoch, index), so a resumed run
sees exactly the batches an uninterrupted one would.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from byol.constants import default_workers
from byol.data.augment import ViewParams, default_views
from byol.data.batch import Batch
from byol.data.cache import load_cached, uses_cache
from byol.data.crops import TwoCropDataset, collate_crops
from byol.data.eval_stream import eval_images
from byol.data.folder import list_images, warn_skipped
from byol.data.seeding import epoch_permutation
from byol.errors import ByolError

log = logging.getLogger(__name__)


class CachedImages:
    """Same-size uint8 images in memory (``(N, H, W, 3)``), with labels or None; in host memory, or
    moved to the training device (``to``) where batches are then gathered without a host copy."""

    def __init__(self, array: np.ndarray, labels: list[int] | None):
        self.array = np.array(array) if array.nbytes < 4 * 2**30 else array  # in RAM unless huge
        self.labels = None if labels is None else torch.tensor(labels, dtype=torch.long)
        self.tensor: torch.Tensor | None = None  # (N, H, W, 3) on a device, after ``to``

    def __len__(self) -> int:
        return len(self.array)

    @property
    def nbytes(self) -> int:
        return self.array.nbytes

    def to(self, device: torch.device) -> None:
        """Keep the images and labels on ``device`` (a GPU: no host gather, pinning or copy per batch)."""
        self.tensor = torch.from_numpy(np.ascontiguousarray(self.array)).to(device)
        if self.labels is not None:
            self.labels = self.labels.to(device)

    def images(self, indices: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` uint8 for the given indices, on the cache's device."""
        if self.tensor is not None:
            return self.tensor[indices.to(self.tensor.device)].permute(0, 3, 1, 2)
        return torch.from_numpy(self.array[indices.numpy()]).permute(0, 3, 1, 2)

    def labels_of(self, indices: torch.Tensor) -> torch.Tensor | None:
        return None if self.labels is None else self.labels[indices.to(self.labels.device)]


class TrainData:
    """Epoch-ordered batches for pretraining, cached or streamed.

    Args:
        path: image folder (ImageFolder-style or unlabelled) or a named dataset.
        image_size: side of the views.
        batch_size: images per batch; every epoch drops the incomplete last batch, so a dataset
            smaller than one batch is an error.
        view1: crop range of the first view for images cropped in workers (default: the paper's,
            ``default_views(image_size)``).
        view2: the second view's.
        cache: read small images from the uint8 cache: auto, on, off (see ``uses_cache``).
        workers: DataLoader workers for streamed images (default: the cores, at most 8).
        eval_crop: the evaluation view's crop (``byol.data.folder.center_view``) of ``eval_batches``.
        rank: this process's rank: each process takes its share of every epoch's permutation.
        world_size: the number of processes.
    """

    def __init__(
        self,
        path: str,
        image_size: int,
        batch_size: int,
        view1: ViewParams | None = None,
        view2: ViewParams | None = None,
        seed: int = 0,
        cache: str = "auto",
        cache_dir: str | Path | None = None,
        workers: int | None = None,
        eval_crop: float = 1.0,
        rank: int = 0,
        world_size: int = 1,
    ):
        self.image_list = list_images(path)
        workers = default_workers() if workers is None else workers
        self.batch_size, self.seed, self.workers = batch_size, seed, workers
        self.image_size, self.cache_dir, self.eval_crop = image_size, cache_dir, eval_crop
        self.rank, self.world_size = rank, world_size
        if view1 is None or view2 is None:
            view1, view2 = default_views(image_size)
        self.cached: CachedImages | None = None
        self.stream: TwoCropDataset | None = None
        self.skipped: set[str] = set()  # unreadable files met so far (all of them, for cached data)
        if uses_cache(self.image_list, image_size, cache):
            array, kept = load_cached(self.image_list, image_size, cache_dir, workers=max(workers, 2))
            kept_set = set(kept)
            self.skipped = {str(p) for i, p in enumerate(self.image_list.paths) if i not in kept_set}
            self.image_list = self.image_list.subset(kept)
            self.cached = CachedImages(array, self.image_list.labels)
        else:
            self.stream = TwoCropDataset(self.image_list, image_size, view1, view2, seed)
        self.active = torch.arange(len(self.image_list))  # the images epochs draw from
        self._fingerprint: dict[str, Any] | None = None
        self._check_size(path)

    def _check_size(self, where) -> None:
        n, batch = len(self.active), self.batch_size * self.world_size
        if n < batch:
            raise ByolError(
                f"{where} has {n} readable images, fewer than one batch of {batch}; "
                "lower --batch-size (incomplete batches are dropped so BatchNorm sees full batches)"
            )

    def keep_on_device(self, setting: str, device: torch.device) -> bool:
        """``data.cache_on_device``: move the uint8 cache to ``device`` (auto: a GPU, when it takes at
        most a quarter of its free memory; CIFAR-10's 50,000 images are 147 MiB). Returns whether it did."""
        if self.cached is None or setting == "off":
            return False
        if setting == "auto":
            if device.type != "cuda":
                return False
            free, _ = torch.cuda.mem_get_info(device)
            if self.cached.nbytes > free // 4:
                return False
        self.cached.to(device)
        log.info("data: the uint8 cache (%.0f MiB) is kept on %s", self.cached.nbytes / 2**20, device)
        return True

    def restrict(self, indices) -> TrainData:
        """A view of this data whose epochs draw only from ``indices`` (e.g. a labelled fraction)."""
        view = copy.copy(self)
        view.active = torch.as_tensor(indices, dtype=torch.long)
        view._check_size(f"the subset of {self.image_list.root}")
        return view

    @property
    def labels(self) -> list[int] | None:
        return self.image_list.labels

    @property
    def labelled(self) -> bool:
        return self.image_list.labels is not None

    @property
    def classes(self) -> list[str]:
        return list(self.image_list.classes)

    def fingerprint(self) -> dict[str, Any]:
        """What identifies the images trained on: their count and a hash of their sorted relative paths.

        Hashed once (every checkpoint holds it: 50,000 paths took seconds of each GPU checkpoint)."""
        if self._fingerprint is None:
            self._fingerprint = self.image_list.fingerprint()
        return dict(self._fingerprint)

    @property
    def num_classes(self) -> int:
        return len(self.image_list.classes)

    def __len__(self) -> int:
        return len(self.active)

    def eval_batches(self, indices: torch.Tensor, batch_size: int = 512) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Unaugmented ``(images, labels)`` batches of the given images: their evaluation views
        (``center_view`` with ``eval_crop``), as ``eval_images`` makes them."""
        if self.cached is not None and self.eval_crop == 1:  # the cache holds these very views
            for s in range(0, len(indices), batch_size):
                chunk = indices[s : s + batch_size]
                labels = self.cached.labels_of(chunk)
                yield self.cached.images(chunk), torch.full((len(chunk),), -1) if labels is None else labels
            return
        sub = self.image_list.subset(indices.tolist())
        batches = eval_images(sub, self.image_size, self.eval_crop, self.cache_dir, self.workers, batch_size)
        for images, labels, _ in batches:
            yield images, labels

    def batches_per_epoch(self) -> int:
        return len(self) // (self.batch_size * self.world_size)

    def epoch(self, epoch: int, start_batch: int = 0, pin_memory: bool = False) -> Iterator[Batch]:
        """Batches ``start_batch ..`` of ``epoch`` for this process."""
        perm = self.active[epoch_permutation(len(self), self.seed, epoch)]
        per_step = self.batch_size * self.world_size
        steps = self.batches_per_epoch()
        chunks = [
            perm[b * per_step : (b + 1) * per_step][self.rank :: self.world_size] for b in range(start_batch, steps)
        ]
        if self.cached is not None:
            pin = pin_memory and self.cached.tensor is None  # host batches: pinned, so copies run ahead
            where = chunks
            if self.cached.tensor is not None and chunks:  # gather with indices already on the GPU:
                device = self.cached.tensor.device  # one copy an epoch, not a sync a step
                where = torch.cat(chunks).to(device).split([len(c) for c in chunks])
            for idx, at in zip(chunks, where):
                images, labels = self.cached.images(at), self.cached.labels_of(at)
                if pin:
                    images, labels = images.pin_memory(), None if labels is None else labels.pin_memory()
                yield Batch.of_images(images, labels, idx)
            return
        loader = DataLoader(
            self.stream,
            batch_sampler=[[(epoch, int(i)) for i in idx] for idx in chunks],
            num_workers=self.workers,
            collate_fn=collate_crops,
            pin_memory=pin_memory,
            persistent_workers=False,
        )
        # Unreadable files met for the first time this epoch: one warning at its end. (A resumed epoch
        # needs no record of them: an unreadable file's place goes to the next readable one by position.)
        new: list[str] = []
        try:
            for c1, c2, labels, idx, bad in loader:
                new += [p for p in map(str, bad) if p not in self.skipped and p not in new]
                yield Batch.of_crops(c1, c2, labels if self.labels is not None else None, idx)
        finally:
            self.skipped.update(new)
            warn_skipped(new, len(self.image_list))

"""Where pretraining batches come from: the ``TrainSource`` protocol, the kNN monitor's
``LabelledImages``, and the one builder of byol's own sources.

Two sources meet ``TrainSource``: ``TrainData`` (an image folder or a named dataset, small images
from the uint8 cache, large ones streamed; also ``LabelledImages``) and ``ShardData`` (WebDataset tar
shards, read in order). The training loop, its hooks and the run's setup name only the protocols.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch

from byol.data.loader import Batch, TrainData
from byol.data.shards import ShardData, is_shards


@runtime_checkable
class TrainSource(Protocol):
    """Epoch-ordered batches for pretraining, each epoch a function of (seed, epoch): what the loop,
    the checkpoints and the run's summary ask of a source. A source of one's own (images in memory,
    a database) passes ``pretrain(..., source=...)``; settings that apply to one kind of source only
    (the uint8 cache on the device, the shards' skip log) are ``build_train_source``'s business."""

    skipped: set[str]  # unreadable samples met so far (a file's path, a shard's ``URL#KEY``), in summary.json

    @property
    def labelled(self) -> bool:
        """Whether batches carry labels (the online classifier trains only then)."""
        ...

    @property
    def num_classes(self) -> int: ...

    def __len__(self) -> int:
        """Images (samples) in an epoch."""
        ...

    def batches_per_epoch(self) -> int:
        """Full batches of this process per epoch (the last, incomplete one is dropped)."""
        ...

    def fingerprint(self) -> dict[str, Any]:
        """What identifies the data trained on (a resumed run must see the same): ``count`` and ``sha256``."""
        ...

    def epoch(self, epoch: int, start_batch: int = 0, pin_memory: bool = False) -> Iterator[Batch]:
        """Batches ``start_batch ..`` of ``epoch`` for this process, the same on every resume."""
        ...


@runtime_checkable
class LabelledImages(Protocol):
    """What the kNN monitor asks of a source besides: its labels, and images by index as evaluation
    views. ``TrainData`` has them; tar shards, read in order, do not (the monitor is off for them)."""

    @property
    def labels(self) -> list[int] | None: ...

    @property
    def classes(self) -> list[str]:
        """The class names, in label order."""
        ...

    def eval_batches(self, indices: torch.Tensor, batch_size: int = 512) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Unaugmented ``(images, labels)`` batches of the images at ``indices``, in that order."""
        ...


def build_train_source(
    cfg, rank: int = 0, world_size: int = 1, device: torch.device | None = None, skip_log: Path | None = None
) -> TrainSource:
    """The source a run's ``Config`` names in ``data.path``: shards for a ``.tar`` pattern or ``pipe:``
    (their skip log at ``skip_log``), else a folder or named dataset (its uint8 cache moved to ``device``
    as ``data.cache_on_device`` says); this process's share of ``world_size``."""
    d = cfg.data
    common = dict(seed=cfg.run.seed, cache_dir=d.cache_dir or None, workers=d.workers, rank=rank, world_size=world_size)
    if is_shards(d.path):
        shards = ShardData(
            d.path, d.image_size, cfg.optim.batch_size, *cfg.augment.views(), **common,
            samples_per_epoch=d.samples_per_epoch, shuffle_buffer=d.shuffle_buffer,
        )  # fmt: skip
        if skip_log is not None:
            shards.keep_skip_log(skip_log)
        return shards
    data = TrainData(
        d.path, d.image_size, cfg.optim.batch_size, *cfg.augment.views(), **common, cache=d.cache,
        eval_crop=d.eval_crop,
    )  # fmt: skip
    if device is not None:
        data.keep_on_device(d.cache_on_device, device)
    return data

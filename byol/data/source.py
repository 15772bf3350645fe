"""Where pretraining batches come from: the ``TrainSource`` protocol and its one builder.

Two sources meet it: ``TrainData`` (an image folder or a named dataset, small images from the uint8
cache, large ones streamed) and ``ShardData`` (WebDataset tar shards, read in order). The training
loop, its hooks and the run's setup name only the protocol.
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
    """Epoch-ordered batches for pretraining, each epoch a function of (seed, epoch)."""

    random_access: bool  # images by index (the kNN monitor's memory bank needs it; shards have none)
    skipped: set  # unreadable files met so far, named in summary.json

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
        """What identifies the data trained on (a resumed run must see the same)."""
        ...

    def keep_on_device(self, setting: str, device: torch.device) -> bool:
        """``data.cache_on_device``: move what is cached to ``device``; whether anything was."""
        ...

    def keep_skip_log(self, path: Path) -> None:
        """Where to record (and, resumed, read) the samples that do not decode, if the source needs them
        to replay an epoch exactly."""
        ...

    def epoch(self, epoch: int, start_batch: int = 0, pin_memory: bool = False) -> Iterator[Batch]:
        """Batches ``start_batch ..`` of ``epoch`` for this process, the same on every resume."""
        ...


def build_train_source(cfg, rank: int = 0, world_size: int = 1) -> TrainSource:
    """The source a run's ``Config`` names in ``data.path``: shards for a ``.tar`` pattern or
    ``pipe:``, else a folder or named dataset; this process's share of ``world_size``."""
    d = cfg.data
    common = dict(seed=cfg.run.seed, cache_dir=d.cache_dir or None, workers=d.workers, rank=rank, world_size=world_size)
    if is_shards(d.path):
        return ShardData(
            d.path, d.image_size, cfg.optim.batch_size, *cfg.augment.views(), **common,
            samples_per_epoch=d.samples_per_epoch, shuffle_buffer=d.shuffle_buffer,
        )  # fmt: skip
    return TrainData(
        d.path, d.image_size, cfg.optim.batch_size, *cfg.augment.views(), **common, cache=d.cache,
        eval_crop=d.eval_crop,
    )  # fmt: skip

"""Where pretraining batches come from: the ``TrainSource`` protocol, the kNN monitor's
``LabelledImages``, and the registry that builds a source from ``data.path``.

Two sources ship: ``TrainData`` (an image folder, a named or Hugging Face dataset; small images from
the uint8 cache, large ones streamed; also ``LabelledImages``) and ``ShardData`` (WebDataset tar
shards, read in order). The training loop, its hooks and the run's setup name only the protocols.
A new kind of data is a module of its own with a ``SourceSpec`` and one line in ``SOURCES`` (or
``SOURCES["name"] = ...`` from outside): which ``data.path`` it claims, and how it is built.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch

from byol.data.batch import Batch
from byol.data.loader import TrainData
from byol.data.shards import ShardData, is_shards
from byol.errors import ByolError


@runtime_checkable
class TrainSource(Protocol):
    """Epoch-ordered batches for pretraining, each epoch a function of (seed, epoch): what the loop,
    the checkpoints and the run's summary ask of a source. A source of one's own (images in memory,
    a database) passes ``pretrain(..., source=...)``; settings that apply to one kind of source only
    (the uint8 cache on the device, the shards' skip log) are ``build_train_source``'s business."""

    skipped: set[str]  # unreadable samples met so far (a file's path, a shard's ``URL#KEY``), in summary.json
    batch_size: int  # images of this process per batch: the run checks it against optim.batch_size

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


@dataclass(frozen=True)
class SourceSpec:
    """One registry entry: ``claims(path)``, whether ``data.path`` names this kind of data; ``build(cfg,
    rank, world_size, device, skip_log)``, the source (``cfg``: a ``byol.config.Config``)."""

    claims: Callable[[str], bool]
    build: Callable[..., TrainSource]


def _common(cfg, rank: int, world_size: int) -> tuple[tuple, dict[str, Any]]:
    """What every shipped source is built from: path, view size, batch and views; seed, cache, workers, share."""
    d = cfg.data
    args = (d.path, d.image_size, cfg.optim.batch_size, *cfg.augment.views())
    return args, dict(seed=cfg.run.seed, cache_dir=d.cache_dir or None, workers=d.workers, rank=rank,
                      world_size=world_size)  # fmt: skip


def _build_shards(cfg, rank: int, world_size: int, device: torch.device | None, skip_log: Path | None) -> ShardData:
    args, common = _common(cfg, rank, world_size)
    shards = ShardData(
        *args, **common, samples_per_epoch=cfg.data.samples_per_epoch, shuffle_buffer=cfg.data.shuffle_buffer
    )
    if skip_log is not None:
        shards.keep_skip_log(skip_log)
    return shards


def _build_images(cfg, rank: int, world_size: int, device: torch.device | None, skip_log: Path | None) -> TrainData:
    args, common = _common(cfg, rank, world_size)
    data = TrainData(*args, **common, cache=cfg.data.cache, eval_crop=cfg.data.eval_crop)
    if device is not None:
        data.keep_on_device(cfg.data.cache_on_device, device)
    return data


SOURCES: dict[str, SourceSpec] = {"shards": SourceSpec(is_shards, _build_shards)}
"""The sources that claim a ``data.path``, asked in order; a path none claims is images (``TrainData``:
a folder, a named dataset, a Hugging Face dataset)."""


def build_train_source(
    cfg, rank: int = 0, world_size: int = 1, device: torch.device | None = None, skip_log: Path | None = None
) -> TrainSource:
    """The source a run's ``Config`` names in ``data.path`` (the first of ``SOURCES`` that claims it,
    else images): this process's share of ``world_size``; ``device`` for a cache kept there
    (``data.cache_on_device``), ``skip_log`` for samples that do not decode (tar shards)."""
    spec = next((s for s in SOURCES.values() if s.claims(cfg.data.path)), None)
    build = spec.build if spec is not None else _build_images
    return build(cfg, rank, world_size, device, skip_log)


def check_batch_size(source: TrainSource, batch_size: int, where: str) -> None:
    """A source's batches must be ``optim.batch_size`` images: that number sets the peak lr, the
    memory probe and the images counted; one clear error instead of a run that silently trains on
    another batch."""
    got = getattr(source, "batch_size", None)
    if got is None:
        raise ByolError(f"{where}: the source has no batch_size (TrainSource declares it); give it the run's "
                        f"optim.batch_size, {batch_size}")  # fmt: skip
    if got != batch_size:
        raise ByolError(
            f"{where}: the source makes batches of {got} images but optim.batch_size is {batch_size} "
            "(it sets the peak lr and the memory probe); build the source with the run's batch size"
        )

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

from byol.config.views import ViewParams
from byol.constants import DEFAULT_SHUFFLE_BUFFER
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
class SourceRequest:
    """What a source is built from, in plain values (``byol.build.train_source`` reads them from a
    ``Config``): the images, the views' size and parameters, the batch; which share this process reads;
    the cache and the workers; and the settings of one kind of source (ignored by the others)."""

    path: str
    image_size: int
    batch_size: int
    views: tuple[ViewParams, ViewParams]
    seed: int = 0
    rank: int = 0  # this process's share of world_size
    world_size: int = 1
    cache: str = "auto"  # images: the uint8 cache (auto, on, off)
    cache_dir: str | None = None
    cache_on_device: str = "auto"  # images: the cache kept on the training device (auto, on, off)
    workers: int | None = None  # None: byol.constants.default_workers()
    eval_crop: float = 1.0  # images: the kNN monitor's evaluation view
    samples_per_epoch: int = 0  # tar shards: 0 counts them in a first pass
    shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER  # tar shards

    def shared(self) -> tuple[tuple, dict[str, Any]]:
        """What every shipped source is built from: path, view size, batch and views; seed, cache, workers, share."""
        args = (self.path, self.image_size, self.batch_size, *self.views)
        return args, dict(seed=self.seed, cache_dir=self.cache_dir, workers=self.workers, rank=self.rank,
                          world_size=self.world_size)  # fmt: skip


@dataclass(frozen=True)
class SourceSpec:
    """One registry entry: ``claims(path)``, whether ``data.path`` names this kind of data; ``build(request,
    device, skip_log)``, the source (``request``: a ``SourceRequest``)."""

    claims: Callable[[str], bool]
    build: Callable[[SourceRequest, torch.device | None, Path | None], TrainSource]


def _build_shards(request: SourceRequest, device: torch.device | None, skip_log: Path | None) -> ShardData:
    args, common = request.shared()
    shards = ShardData(
        *args, **common, samples_per_epoch=request.samples_per_epoch, shuffle_buffer=request.shuffle_buffer
    )
    if skip_log is not None:
        shards.keep_skip_log(skip_log)
    return shards


def _build_images(request: SourceRequest, device: torch.device | None, skip_log: Path | None) -> TrainData:
    args, common = request.shared()
    data = TrainData(*args, **common, cache=request.cache, eval_crop=request.eval_crop)
    if device is not None:
        data.keep_on_device(request.cache_on_device, device)
    return data


SOURCES: dict[str, SourceSpec] = {"shards": SourceSpec(is_shards, _build_shards)}
"""The sources that claim a ``data.path``, asked in order; a path none claims is images (``TrainData``:
a folder, a named dataset, a Hugging Face dataset)."""


def build_train_source(
    request: SourceRequest, device: torch.device | None = None, skip_log: Path | None = None
) -> TrainSource:
    """The source ``request.path`` names (the first of ``SOURCES`` that claims it, else images): its
    share of the data; ``device`` for a cache kept there (``cache_on_device``), ``skip_log`` for samples
    that do not decode (tar shards)."""
    spec = next((s for s in SOURCES.values() if s.claims(request.path)), None)
    build = spec.build if spec is not None else _build_images
    return build(request, device, skip_log)


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

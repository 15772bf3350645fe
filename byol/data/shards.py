"""WebDataset tar shards: pretraining data too big for a folder on one disk (the byol[webdataset] extra).

``DATA`` is a shard pattern (``shards/train-{000000..000127}.tar``), one ``.tar`` file, or a
``pipe:`` command (``pipe:curl -s https://host/train-{000..127}.tar``). Each sample is an image
(``jpg``, ``jpeg``, ``png``, ``webp``...) and, optionally, its class (``cls``, an integer).

How an epoch reads them (``ShardData.epoch``), all of it a function of (seed, epoch):
- the shard list is permuted; shard ``i`` of that order goes to rank ``i % world_size``, and within
  a rank to DataLoader worker ``(i // world_size) % workers``;
- each worker streams its shards in that order (cycling when they run out, so every rank makes the
  same number of steps), through a shuffle buffer of ``data.shuffle_buffer`` samples with its own
  seeded generator, and crops two views per sample as the folder path does;
- an epoch is ``data.samples_per_epoch`` samples (or the count of a first pass over the shards,
  cached), split into ``samples // (batch × world_size)`` steps on every rank;
- a sample that does not decode is skipped (the next one takes its place), named in the run's
  ``skipped_files`` and warned about at the epoch's end.

Resuming mid-epoch replays the epoch's stream from its start without decoding the batches already
trained (each worker reads their samples and draws their random numbers, then drops them): the batches
after the checkpoint are the ones an unbroken run gets, bit for bit, at the cost of re-reading the
epoch's first part from the shards. A sample that did not decode took a slot but made no item; the
replay knows those samples by name from the run's skip log (``keep_skip_log``: one file a rank,
written as they are met), so it drops them alike without decoding anything.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import logging
import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from byol.constants import DEFAULT_SHUFFLE_BUFFER, IMAGE_EXTENSIONS
from byol.data.augment import ViewParams, default_views
from byol.data.batch import Batch
from byol.data.cache import default_cache_dir
from byol.data.crops import collate_crops, crop_view
from byol.data.folder import warn_skipped
from byol.data.seeding import epoch_permutation
from byol.errors import ByolError
from byol.files import atomic_write, write_failed

log = logging.getLogger(__name__)

IMAGE_KEYS = tuple(e.lstrip(".") for e in IMAGE_EXTENSIONS)


def is_shards(path: str) -> bool:
    """Whether ``DATA`` names WebDataset shards rather than a folder or a named dataset."""
    return str(path).startswith("pipe:") or str(path).endswith(".tar")


def _wds():
    try:
        import webdataset
    except ImportError:
        raise ByolError("tar shards need the webdataset package: pip install 'byol[webdataset]'") from None
    return webdataset


def expand_shards(spec: str) -> list[str]:
    """The shard URLs of a brace pattern (``a-{000..009}.tar``); local ones must exist."""
    from braceexpand import braceexpand

    urls = [u for part in spec.split("::") for u in braceexpand(part)]
    missing = [u for u in urls if not u.startswith("pipe:") and "://" not in u and not Path(u).is_file()]
    if missing:
        raise ByolError(f"{spec}: {len(missing)} of {len(urls)} shards do not exist, e.g. {missing[0]}")
    return urls


def _samples(urls, bad: list[str], failures: list[int] | None = None, limit: int = 0) -> Iterator[dict[str, Any]]:
    """Samples of the shards in order; a shard that cannot be read is named in ``bad`` and skipped.
    With ``limit``, more than ``limit`` failures in a row (``failures[0]``, reset by the reader on
    each good sample) stop with an error instead of cycling over unreadable shards forever."""
    from webdataset.tariterators import tarfile_samples

    def skip(exc: Exception) -> bool:
        bad.append(f"{type(exc).__name__}: {' '.join(str(exc).split())[:160]}")
        if failures is not None:
            failures[0] += 1
            if limit and failures[0] > limit:
                raise ByolError(f"shards: {failures[0]} read errors in a row, the last: {bad[-1]}")
        return True

    yield from tarfile_samples(({"url": u} for u in urls), handler=skip)


def _image_bytes(sample: dict[str, Any]) -> bytes | None:
    return next((sample[k] for k in IMAGE_KEYS if k in sample), None)


def _label(sample: dict[str, Any]) -> int:
    raw = sample.get("cls")
    return -1 if raw is None else int(raw.decode() if isinstance(raw, bytes) else raw)


def count_shards(spec: str, urls: list[str], cache_dir: str | Path | None) -> dict[str, Any]:
    """Samples and classes of the shards: one pass reading names and ``cls`` only, cached by the
    shards' names, sizes and times (``pipe:`` URLs by their text)."""
    stamp = [(u, *(os.stat(u)[6:9:2] if Path(u).is_file() else ())) for u in urls]  # size, mtime
    key = hashlib.sha256(json.dumps(stamp).encode()).hexdigest()[:20]
    cache = Path(cache_dir or default_cache_dir()) / f"shards-{key}.json"
    if cache.is_file():
        return json.loads(cache.read_text())
    log.info("shards: counting the samples of %d shards (once; or set data.samples_per_epoch)", len(urls))
    n, classes, bad = 0, set(), []
    for sample in _samples(urls, bad):
        if _image_bytes(sample) is not None:
            n += 1
            if "cls" in sample:
                classes.add(_label(sample))
    counted = {"samples": n, "num_classes": max(classes) + 1 if classes else 0, "labelled": bool(classes)}
    cache.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(cache, "w") as f:
        f.write(json.dumps(counted))
    return counted


def probe_shard_side(spec: str) -> int:
    """The longer side of the first image of the first shard (``--preset auto`` on shards)."""
    bad: list[str] = []
    for sample in _samples(expand_shards(spec)[:1], bad):
        data = _image_bytes(sample)
        if data is not None:
            with Image.open(io.BytesIO(data)) as img:
                return max(img.size)
    raise ByolError(f"{spec}: no image in the first shard" + (f" ({bad[0]})" if bad else ""))


def sample_name(sample: dict[str, Any]) -> str:
    """``SHARD#KEY``: how a sample is named in warnings, summary.json and the skip log."""
    return f"{sample.get('__url__', '?')}#{sample.get('__key__', '?')}"


class ShardStream(IterableDataset):
    """One epoch of one rank: two crops per sample, in the order described in the module's doc."""

    def __init__(self, data: ShardData, epoch: int, start_batch: int, workers: int):
        self.data, self.epoch, self.start_batch, self.workers = data, epoch, start_batch, max(workers, 1)
        self.known_bad = frozenset(data.skipped)  # samples that did not decode: the replay drops them alike

    def _my_shards(self, logical_worker: int) -> list[str]:
        d = self.data
        order = [d.urls[i] for i in epoch_permutation(len(d.urls), d.seed, self.epoch).tolist()]
        mine = order[d.rank :: d.world_size] or order[d.rank % len(order) :: len(order)]
        return mine[logical_worker :: self.workers] or mine[logical_worker % len(mine) :: len(mine)]

    def __iter__(self):
        d, info = self.data, get_worker_info()
        worker = info.id if info is not None else 0
        # The DataLoader takes batch b from worker b % workers, starting with worker 0: a resumed
        # epoch rotates the roles so that its first batch comes from the worker that made it before.
        logical = (worker + self.start_batch) % self.workers
        skip_batches = max(0, -(-(self.start_batch - logical) // self.workers))
        rng = random.Random(f"{d.seed}/{self.epoch}/{d.rank}/{logical}")
        bad: list[str] = []
        failures = [0]
        shards = self._my_shards(logical)
        stream = _samples(itertools.chain.from_iterable(itertools.repeat(shards)), bad, failures, 2 * len(shards) + 10)
        buffer: list[dict[str, Any]] = []
        made = 0
        for sample in stream:
            failures[0] = 0
            if len(buffer) < d.shuffle_buffer:
                buffer.append(sample)
                continue
            i = rng.randrange(len(buffer))
            sample, buffer[i] = buffer[i], sample
            crop_seed = rng.getrandbits(62)
            if made < skip_batches * d.batch_size:  # trained before the checkpoint: read, not decoded
                made += sample_name(sample) not in self.known_bad  # a bad one made no item the first time
                continue
            item = self._item(sample, crop_seed, bad)
            if item is not None:
                made += 1
                yield *item, made, bad[:]
                bad.clear()

    def _item(self, sample: dict[str, Any], crop_seed: int, bad: list[str]):
        data = _image_bytes(sample)
        name = sample_name(sample)
        try:
            img = Image.open(io.BytesIO(data)).convert("RGB")
        except Exception:  # not an image, truncated, no image key
            bad.append(name)
            return None
        g = torch.Generator().manual_seed(crop_seed)
        v1, v2 = self.data.views
        size = self.data.image_size
        return crop_view(img, size, v1, g), crop_view(img, size, v2, g), _label(sample)


class ShardData:
    """``TrainData``'s interface over WebDataset shards (see the module's doc for the order)."""

    def __init__(
        self,
        spec: str,
        image_size: int,
        batch_size: int,
        view1: ViewParams | None = None,
        view2: ViewParams | None = None,
        seed: int = 0,
        cache_dir: str | Path | None = None,
        workers: int = 0,
        rank: int = 0,
        world_size: int = 1,
        samples_per_epoch: int = 0,
        shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER,
    ):
        _wds()
        self.spec, self.urls = spec, expand_shards(spec)
        self.image_size, self.batch_size, self.seed, self.workers = image_size, batch_size, seed, workers
        self.rank, self.world_size, self.shuffle_buffer = rank, world_size, shuffle_buffer
        self.views = (view1, view2) if view1 is not None and view2 is not None else default_views(image_size)
        if samples_per_epoch:
            self.samples, self.num_classes, labelled = samples_per_epoch, 0, False
        else:
            counted = count_shards(spec, self.urls, cache_dir)
            self.samples, self.num_classes, labelled = counted["samples"], counted["num_classes"], counted["labelled"]
        self.labelled = labelled
        self.skipped: set[str] = set()
        self.skip_log: Path | None = None
        if self.samples < batch_size * world_size:
            raise ByolError(f"{spec} has {self.samples} samples, fewer than one batch of {batch_size * world_size}")

    def __len__(self) -> int:
        return self.samples

    def keep_skip_log(self, path: Path) -> None:
        """Write the samples that do not decode to ``path`` as they are met, and read those an earlier
        sitting met: a resumed epoch's replay drops them as the first pass did (see the module's doc)."""
        self.skip_log = Path(path)
        if self.skip_log.exists():
            self.skipped.update(line for line in self.skip_log.read_text().splitlines() if line)

    def batches_per_epoch(self) -> int:
        return self.samples // (self.batch_size * self.world_size)

    def fingerprint(self) -> dict[str, Any]:
        return {"count": self.samples, "sha256": hashlib.sha256("\n".join(self.urls).encode()).hexdigest()}

    def epoch(self, epoch: int, start_batch: int = 0, pin_memory: bool = False):
        steps = self.batches_per_epoch() - start_batch
        if steps <= 0:
            return
        per_rank = max(1, len(self.urls) // self.world_size)
        workers = min(self.workers, per_rank)
        stream = ShardStream(self, epoch, start_batch, workers)
        loader = DataLoader(
            stream, batch_size=self.batch_size, num_workers=workers, collate_fn=collate_crops, pin_memory=pin_memory
        )
        new: list[str] = []
        try:
            for c1, c2, labels, idx, bad in itertools.islice(loader, steps):
                met = [p for p in bad if p not in self.skipped and p not in new]
                if met and self.skip_log is not None:  # before the batch trains: before any checkpoint
                    with atomic_write(self.skip_log, "w") as f:
                        f.write("".join(f"{p}\n" for p in sorted(self.skipped | set(new) | set(met))))
                new += met
                yield Batch.of_crops(c1, c2, labels if self.labelled else None, idx)
        finally:
            self.skipped.update(new)
            warn_skipped([Path(p) for p in new], self.samples)


def _image_key(path: Path, data: bytes, sniff: bool) -> str:
    """A sample's image key: the file's extension, or for a dataset's row its bytes' format (jpg default)."""
    if not sniff:
        return path.suffix.lower().lstrip(".") or "jpg"
    try:
        with Image.open(io.BytesIO(data)) as img:
            kind = (img.format or "jpeg").lower()
    except Exception:  # undecodable: kept under jpg, skipped by the reader as any bad sample
        kind = "jpeg"
    return {"jpeg": "jpg", "tiff": "tif"}.get(kind, kind)


def write_shards(source: str, out: str | Path, shard_size: int = 1000, seed: int = 0) -> dict[str, Any]:
    """``byol shard``: the images of a folder (original bytes, labels as ``cls``) as shuffled tar shards
    ``OUT/shard-000000.tar...`` and ``OUT/shards.json`` (pattern, sample count, classes)."""
    wds = _wds()
    from byol.data.folder import list_images

    images = list_images(source)
    out = Path(out)
    if any(out.glob("shard-*.tar")):
        raise ByolError(f"--out {out} holds shards already; write into an empty folder")
    out.mkdir(parents=True, exist_ok=True)
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed)).tolist()
    unreadable, n, sink = [], 0, None
    try:
        with wds.ShardWriter(str(out / "shard-%06d.tar"), maxcount=shard_size, verbose=0) as sink:
            for i in order:
                path = Path(images.paths[i])
                try:
                    data = images.read_bytes(i)
                except (OSError, ValueError):  # no read permission, vanished, a row without an image: listed
                    unreadable.append(path)
                    continue
                sample = {"__key__": f"{n:09d}", _image_key(path, data, images.rows is not None): data}
                if images.labels is not None:
                    sample["cls"] = images.labels[i]
                sink.write(sample)
                n += 1
    except OSError as e:  # the disk filled: no half-written set of shards is left to be taken for a whole one
        for shard in out.glob("shard-*.tar"):
            shard.unlink()
        raise write_failed(Path(getattr(sink, "fname", None) or out), e) from None
    warn_skipped(unreadable, len(images))
    shards = len(list(out.glob("shard-*.tar")))
    last = max(shards - 1, 0)
    info = {
        "pattern": str(out / f"shard-{{000000..{last:06d}}}.tar"),
        "shards": shards,
        "samples": n,
        "classes": list(images.classes),
    }
    with atomic_write(out / "shards.json", "w") as f:
        f.write(json.dumps(info, indent=2) + "\n")
    return info

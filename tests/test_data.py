import logging
import os

import numpy as np
import pytest
import torch
from PIL import Image

from byol.data.augment import VIEW1, VIEW2
from byol.data.cache import load_cached
from byol.data.eval_stream import eval_images
from byol.data.folder import list_images, open_rgb
from byol.data.loader import TrainData
from byol.data.seeding import epoch_permutation
from byol.errors import ByolError


def _save(path, mode="RGB", size=(32, 32), fmt=None, color=(200, 30, 60)):
    path.parent.mkdir(parents=True, exist_ok=True)
    c = color if mode in ("RGB", "RGBA", "CMYK") else 128
    if mode == "RGBA":
        c = (*color, 128)
    if mode == "CMYK":
        c = (10, 200, 30, 5)
    img = Image.new(mode, size, c)
    img.save(path, format=fmt)
    return path


@pytest.fixture
def odd_folder(tmp_path):
    root = tmp_path / "odd"
    _save(root / "a" / "rgb.jpg")
    _save(root / "a" / "rgba.png", "RGBA")
    _save(root / "a" / "gray.png", "L")
    _save(root / "b" / "palette.png", "P")
    _save(root / "b" / "cmyk.jpg", "CMYK", fmt="JPEG")
    _save(root / "b" / "big.bmp", size=(80, 50))
    full = _save(root / "b" / "full.jpg", size=(32, 32))
    (root / "b" / "truncated.jpg").write_bytes(full.read_bytes()[: len(full.read_bytes()) // 2])
    (root / "b" / "text.jpg").write_text("this is not an image")
    (root / "b" / "notes.txt").write_text("ignored: not an image extension")
    return root


def test_imagefolder_labels_and_unlabelled_layouts(tmp_path, odd_folder):
    images = list_images(odd_folder)
    assert images.classes == ["a", "b"]
    assert len(images) == 9 and images.labels.count(0) == 3
    flat = tmp_path / "flat"
    _save(flat / "x.jpg")
    _save(flat / "nested" / "deeper" / "y.webp", fmt="WEBP")
    unlabelled = list_images(flat)
    assert unlabelled.labels is None and len(unlabelled) == 2


@pytest.mark.parametrize("name", ["rgba.png", "gray.png", "palette.png", "cmyk.jpg"])
def test_modes_become_rgb(odd_folder, name):
    path = next(odd_folder.rglob(name))
    img = open_rgb(path)
    assert img.mode == "RGB" and img.size == (32, 32)


def test_unreadable_files_are_skipped_with_one_warning(odd_folder, tmp_path, caplog):
    images = list_images(odd_folder)
    with caplog.at_level(logging.WARNING):
        array, kept = load_cached(images, 32, tmp_path / "cache")
    warnings = [r for r in caplog.records if "could not be read" in r.getMessage()]
    assert len(warnings) == 1
    msg = warnings[0].getMessage()
    assert "skipped 2 of 9" in msg and "truncated.jpg" in msg and "text.jpg" in msg
    assert array.shape == (7, 32, 32, 3) and array.dtype == np.uint8
    assert [images.paths[i].name for i in kept] == [
        "gray.png", "rgb.jpg", "rgba.png", "big.bmp", "cmyk.jpg", "full.jpg", "palette.png",
    ]  # fmt: skip
    # The 80×50 bitmap (one colour) was resized (shorter side) and centre-cropped to 32×32.
    big = array[kept.index(images.paths.index(next(p for p in images.paths if p.name == "big.bmp")))]
    assert big.shape == (32, 32, 3) and np.abs(big.astype(int) - (200, 30, 60)).max() <= 2


def test_cache_is_reused_and_rebuilt_when_a_file_changes(tmp_path, caplog):
    root = tmp_path / "imgs"
    for i in range(4):
        _save(root / f"{i}.png", color=(i * 40, 0, 0))
    cache = tmp_path / "cache"
    images = list_images(root)
    first, _ = load_cached(images, 32, cache)
    files = sorted(cache.glob("*.npy"))
    with caplog.at_level(logging.INFO):
        second, _ = load_cached(list_images(root), 32, cache)
    assert isinstance(second, np.memmap) and np.array_equal(first, second)
    assert "from" in caplog.text and "decoding" not in caplog.text
    _save(root / "0.png", color=(255, 255, 255))
    import os

    os.utime(root / "0.png", ns=(10**18, 10**18))
    third, _ = load_cached(list_images(root), 32, cache)
    assert len(list(cache.glob("*.npy"))) == len(files) + 1
    assert third[0, 0, 0, 0] == 255


def test_empty_or_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ByolError, match="does not exist"):
        list_images(tmp_path / "missing")
    (tmp_path / "empty" / "cls").mkdir(parents=True)
    (tmp_path / "empty" / "cls" / "a.txt").write_text("x")
    with pytest.raises(ByolError, match="no images"):
        list_images(tmp_path / "empty")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.jpg").write_text("not an image")
    with pytest.raises(ByolError, match="no readable image"):
        TrainData(str(bad), 32, 2, VIEW1, VIEW2, cache_dir=tmp_path / "c")


def test_dataset_smaller_than_a_batch_is_an_error(odd_folder, tmp_path):
    with pytest.raises(ByolError, match="fewer than one batch of 64"):
        TrainData(str(odd_folder), 32, 64, VIEW1, VIEW2, cache="on", cache_dir=tmp_path / "c")


def test_epochs_are_permutations_fixed_by_seed_and_drop_the_last_batch(odd_folder, tmp_path):
    data = TrainData(str(odd_folder), 32, 3, VIEW1, VIEW2, seed=5, cache="on", cache_dir=tmp_path / "c")
    assert data.batches_per_epoch() == 2  # 7 images, batches of 3
    batches = list(data.epoch(0))
    assert [b.images.shape for b in batches] == [torch.Size([3, 3, 32, 32])] * 2
    seen = torch.cat([b.indices for b in batches])
    assert len(set(seen.tolist())) == 6
    assert torch.equal(epoch_permutation(7, 5, 0), epoch_permutation(7, 5, 0))
    assert not torch.equal(epoch_permutation(100, 5, 0), epoch_permutation(100, 5, 1))
    resumed = list(data.epoch(0, start_batch=1))
    assert torch.equal(resumed[0].indices, batches[1].indices)


def test_a_cache_kept_on_the_device_gives_the_same_batches_and_monitor_views(odd_folder, tmp_path):
    """``data.cache_on_device``: batches gathered from the moved cache equal those of the host cache
    (on a CPU the "device" is the host; the gather runs through the same tensor path as on a GPU)."""
    make = lambda: TrainData(str(odd_folder), 32, 3, VIEW1, VIEW2, seed=5, cache="on", cache_dir=tmp_path / "c")  # noqa: E731
    host, moved = make(), make()
    assert not host.keep_on_device("auto", torch.device("cpu"))  # auto: GPUs only
    assert moved.keep_on_device("on", torch.device("cpu")) and moved.cached.tensor is not None
    for a, b in zip(host.epoch(1), moved.epoch(1), strict=True):
        assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels) and torch.equal(a.indices, b.indices)
    idx = torch.tensor([4, 0, 2])
    for (xa, ya), (xb, yb) in zip(host.eval_batches(idx, 2), moved.eval_batches(idx, 2), strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_each_rank_takes_its_half_of_every_batch(odd_folder, tmp_path):
    """Under torchrun (world size 2, per-rank batch 2) step k's global batch of 4 is the one-process
    batch k of 4, split between the ranks: disjoint halves, nothing left out, in every epoch."""
    make = lambda rank, world, batch: TrainData(  # noqa: E731
        str(odd_folder), 32, batch, VIEW1, VIEW2, seed=3, cache="on", cache_dir=tmp_path / "c", rank=rank,
        world_size=world,
    )  # fmt: skip
    whole, rank0, rank1 = make(0, 1, 4), make(0, 2, 2), make(1, 2, 2)
    for epoch in (0, 1):
        for a, b, w in zip(rank0.epoch(epoch), rank1.epoch(epoch), whole.epoch(epoch), strict=True):
            assert len(a.indices) == len(b.indices) == 2 and not set(a.indices.tolist()) & set(b.indices.tolist())
            assert sorted(a.indices.tolist() + b.indices.tolist()) == sorted(w.indices.tolist())


def test_large_images_stream_two_crops_per_sample(tmp_path):
    root = tmp_path / "photos"
    for i in range(6):
        _save(root / "c0" / f"{i}.jpg", size=(120 + i * 10, 90))
        _save(root / "c1" / f"{i}.jpg", size=(90, 130))
    data = TrainData(str(root), 64, 4, VIEW1, VIEW2, seed=0, workers=0)
    assert data.stream is not None and data.cached is None
    batch = next(iter(data.epoch(0)))
    c1, c2 = batch.crops
    assert c1.shape == (4, 3, 64, 64) and c1.dtype == torch.uint8 and batch.labels is not None
    again = next(iter(data.epoch(0)))
    assert torch.equal(again.crops[0], c1)  # crops depend on (seed, epoch, index), not on workers
    evals = list(eval_images(list_images(root), 64, workers=0, batch_size=5))
    assert sum(len(x) for x, _, _ in evals) == 12 and evals[0][0].shape[1:] == (3, 64, 64)
    assert torch.cat([i for _, _, i in evals]).tolist() == list(range(12))


def test_named_dataset_without_its_files_says_where_to_put_them(tmp_path, monkeypatch, capsys):
    from byol.cli.__main__ import main as cli

    monkeypatch.setenv("BYOL_DATASETS", str(tmp_path / "datasets"))
    assert cli(["pretrain", "cifar10", "--out", str(tmp_path / "run"), "--preset", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert "cifar-10-batches-py" in err and str(tmp_path / "datasets") in err and len(err.splitlines()) == 1
    with pytest.raises(ByolError, match="splits train, test, unlabeled"):
        list_images("stl10:valid")


def test_named_dataset_arrays_feed_training_and_evaluation(tmp_path, monkeypatch):
    import byol.data.folder as folder

    rng = np.random.default_rng(0)
    fake = rng.integers(0, 256, (20, 32, 32, 3), dtype=np.uint8)
    monkeypatch.setattr(folder, "load_named", lambda name, split: (fake, [i % 2 for i in range(20)], ["a", "b"]))
    data = TrainData("cifar10", 32, 4, VIEW1, VIEW2, cache_dir=tmp_path)
    assert data.cached is not None and len(data) == 20 and data.num_classes == 2
    batch = next(iter(data.epoch(0)))
    assert torch.equal(batch.images[0], torch.from_numpy(fake[batch.indices[0].item()]).permute(2, 0, 1))
    evals = list(eval_images(list_images("cifar10:test"), 32))
    assert torch.equal(evals[0][0][3], torch.from_numpy(fake[3]).permute(2, 0, 1))
    assert not list(tmp_path.glob("*.npy"))  # already decoded: no cache file written


def test_every_evaluation_path_sees_the_same_view_of_an_image(tmp_path):
    """One rule: shorter side to size / crop, centre crop. The cache (small images), the workers
    (large images) and a named dataset's array give the same pixels for the same image."""
    from byol.data.folder import ImageList, center_view

    rng = np.random.default_rng(0)
    root = tmp_path / "photos"
    arrays = [rng.integers(0, 256, (60 + 10 * i, 80, 3), dtype=np.uint8) for i in range(4)]
    for i, a in enumerate(arrays):
        (root / "c").mkdir(parents=True, exist_ok=True)
        Image.fromarray(a).save(root / "c" / f"{i}.png")  # lossless
    images = list_images(root)
    for crop in (1.0, 0.875):
        streamed = torch.cat([x for x, _, _ in eval_images(images, 32, crop, workers=0, batch_size=3)])
        cached, kept = load_cached(images, 32, tmp_path / "cache", crop=crop)
        assert kept == [0, 1, 2, 3]
        assert torch.equal(streamed, torch.from_numpy(np.array(cached)).permute(0, 3, 1, 2))
        direct = np.stack([center_view(Image.fromarray(a), 32, crop) for a in arrays])
        assert np.array_equal(cached, direct)
    # The same rule on a named dataset's decoded array (same-size images).
    square = np.stack([a[:60, :60] for a in arrays])
    named = ImageList(tmp_path, [tmp_path / str(i) for i in range(4)], [0] * 4, ["c"], square)
    from_array = torch.cat([x for x, _, _ in eval_images(named, 32, 0.875)])
    expected = np.stack([center_view(Image.fromarray(a), 32, 0.875) for a in square])
    assert torch.equal(from_array, torch.from_numpy(expected).permute(0, 3, 1, 2))
    # The paper's crop keeps the central 7/8 of the shorter side: a different view than the whole image.
    assert not np.array_equal(center_view(Image.fromarray(arrays[0]), 32, 1.0), expected[0])


def test_monitor_batches_of_cached_training_data_follow_the_eval_crop(tmp_path):
    root = tmp_path / "imgs"
    rng = np.random.default_rng(1)
    for i in range(6):
        (root / f"c{i % 2}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(root / f"c{i % 2}" / f"{i}.png")
    whole = TrainData(str(root), 32, 2, cache_dir=tmp_path / "c", workers=0)
    cropped = TrainData(str(root), 32, 2, cache_dir=tmp_path / "c", workers=0, eval_crop=0.875)
    idx = torch.arange(6)
    (a, _), (b, _) = next(whole.eval_batches(idx)), next(cropped.eval_batches(idx))
    assert torch.equal(a, whole.cached.images(idx))  # crop 1: the training cache itself
    expected = next(eval_images(whole.image_list, 32, 0.875, tmp_path / "c", workers=0))[0]
    assert torch.equal(b, expected) and not torch.equal(a, b)


@pytest.mark.parametrize("cores, workers", [(1, 1), (3, 3), (8, 8), (64, 8)])
def test_default_workers_are_the_usable_cores_at_most_8(cores, workers, monkeypatch):
    import os

    from byol.constants import default_workers

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cores)), raising=False)
    assert default_workers() == workers
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)  # not Linux: the machine's count
    monkeypatch.setattr(os, "cpu_count", lambda: cores)
    assert default_workers() == workers


def _fake_cifar(root, monkeypatch, payload=None):
    """torchvision's cifar-10-batches-py layout with small arrays; checksums waved through."""
    import pickle

    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    arrays = {}
    for i in range(1, 6):
        arrays[i] = rng.integers(0, 256, (4, 3072), dtype=np.uint8)
        entry = {"data": arrays[i], "labels": [i % 10] * 4, "batch_label": f"batch {i}"}
        (folder / f"data_batch_{i}").write_bytes(pickle.dumps(payload or entry, protocol=2))
    (folder / "test_batch").write_bytes(pickle.dumps({"data": arrays[1], "labels": [0] * 4}, protocol=2))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": [f"c{i}" for i in range(10)]}, protocol=2))
    monkeypatch.setenv("BYOL_DATASETS", str(root))
    monkeypatch.setattr("torchvision.datasets.utils.check_integrity", lambda path, md5=None: True)
    return arrays


def test_named_cifar_files_are_read_without_running_pickled_code(tmp_path, monkeypatch):
    from byol.data.named import load_named

    arrays = _fake_cifar(tmp_path / "ok", monkeypatch)
    images, labels, classes = load_named("cifar10", "train")
    assert images.shape == (20, 32, 32, 3) and classes[3] == "c3" and labels[:5] == [1, 1, 1, 1, 2]
    assert np.array_equal(images[0], arrays[1][0].reshape(3, 32, 32).transpose(1, 2, 0))


class _Payload:
    def __reduce__(self):
        return (os.system, ("touch PWNED_BY_CIFAR",))


def test_a_cifar_file_carrying_code_is_refused(tmp_path, monkeypatch):
    from byol.data.named import load_named

    monkeypatch.chdir(tmp_path)
    _fake_cifar(tmp_path / "evil", monkeypatch, payload={"data": _Payload(), "labels": [0]})
    with pytest.raises(ByolError, match="not a plain data file.*refused to load (posix|os).system"):
        load_named("cifar10", "train")
    assert not (tmp_path / "PWNED_BY_CIFAR").exists()


class InMemorySource:
    """A third data source, as a user would write one: images in memory, ``TrainSource``'s members and
    nothing else (no labels, no images by index: the kNN monitor stays off)."""

    labelled, num_classes = False, 0

    def __init__(self, n: int = 64, batch_size: int = 16, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.images = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g)
        self.batch_size, self.seed, self.skipped = batch_size, seed, set()

    def __len__(self) -> int:
        return len(self.images)

    def batches_per_epoch(self) -> int:
        return len(self) // self.batch_size

    def fingerprint(self) -> dict:
        import hashlib

        return {"count": len(self), "sha256": hashlib.sha256(self.images.numpy().tobytes()).hexdigest()}

    def epoch(self, epoch: int, start_batch: int = 0, pin_memory: bool = False):
        from byol.data.batch import Batch

        perm = epoch_permutation(len(self), self.seed, epoch)
        for b in range(start_batch, self.batches_per_epoch()):
            idx = perm[b * self.batch_size : (b + 1) * self.batch_size]
            yield Batch(self.images[idx], None, None, idx)


def test_a_third_data_source_of_images_in_memory_trains_through_the_real_loop_and_checkpoints(tmp_path):
    import json

    from helpers import tiny_config

    from byol.data.source import LabelledImages, TrainSource
    from byol.train import checkpoint as ckpt_io
    from byol.train.pretrain import pretrain

    source = InMemorySource()
    assert isinstance(source, TrainSource) and not isinstance(source, LabelledImages)
    cfg = tiny_config("memory:64-random-images", tmp_path / "cache", epochs=0.5, knn_every=1)
    cfg.optim.batch_size = 16  # 4 batches an epoch: half an epoch is 2 steps
    out = tmp_path / "run"
    result = pretrain(cfg, out, progress=False, source=source)
    assert result.steps == 2 and result.images_seen == 32
    [checkpoint] = ckpt_io.list_checkpoints(out)
    assert checkpoint.name == "step-000000002.pt"
    assert ckpt_io.load_checkpoint(checkpoint)["data"] == source.fingerprint()  # what a resume checks
    summary = json.loads((out / "summary.json").read_text())
    assert summary["images"] == 64 and summary["skipped_images"] == 0 and "knn_final" not in summary
    assert (out / "encoder.safetensors").exists()


def test_a_third_source_registered_by_one_line_is_built_from_data_path_trains_and_resumes(tmp_path, monkeypatch):
    """``SOURCES`` (issue 42): one entry claims ``memory:N`` paths; ``pretrain`` builds it from the
    config alone, trains, checkpoints, and a second sitting with a longer run resumes at the step."""
    from helpers import resume, tiny_config

    from byol.build import train_source
    from byol.data import source as sources
    from byol.train.pretrain import pretrain

    monkeypatch.setitem(
        sources.SOURCES, "memory",
        sources.SourceSpec(lambda p: p.startswith("memory:"), lambda req, *_: InMemorySource(int(req.path[7:]))),
    )  # fmt: skip
    cfg = tiny_config("memory:64", tmp_path / "cache", epochs=0.5, knn_every=0)
    cfg.optim.batch_size = 16
    assert isinstance(train_source(cfg), InMemorySource)  # claimed before the folder fallback
    first = pretrain(cfg, tmp_path / "run", progress=False)
    assert first.steps == 2 and first.images_seen == 32
    cfg.run.epochs = 1.0
    second = resume(cfg, tmp_path / "run", at=2)
    assert second.steps == 4 and second.images_seen == 64


def test_a_source_whose_batch_differs_from_the_optimisers_is_one_clear_error(tmp_path):
    from helpers import tiny_config

    from byol.train.pretrain import pretrain

    cfg = tiny_config("memory:64", tmp_path / "cache", epochs=0.5, knn_every=0)
    cfg.optim.batch_size = 32  # the source below makes batches of 16
    with pytest.raises(ByolError, match="the source makes batches of 16 images but optim.batch_size is 32"):
        pretrain(cfg, tmp_path / "run", progress=False, source=InMemorySource(batch_size=16))
    assert not list((tmp_path / "run").glob("checkpoints/*.pt"))

"""WebDataset tar shards: `byol shard` round trip, epoch order, resume, ranks, bad samples, pretraining."""

import hashlib
import io
import json
import tarfile

import pytest
import torch

from byol.cli.__main__ import main as cli
from byol.data.folder import list_images
from byol.data.shards import ShardData, ShardStream, _samples, expand_shards, is_shards
from byol.errors import ByolError


@pytest.fixture(scope="module")
def shards(small, tmp_path_factory):
    out = tmp_path_factory.mktemp("shards")
    assert cli(["shard", str(small["train"]), "--out", str(out), "--shard-size", "64"]) == 0
    return json.loads((out / "shards.json").read_text())


def test_shard_round_trip_keeps_every_image_and_label(small, shards):
    images = list_images(small["train"])
    expected = sorted(
        (hashlib.sha256(p.read_bytes()).hexdigest(), label) for p, label in zip(images.paths, images.labels)
    )
    bad: list[str] = []
    got = sorted(
        (hashlib.sha256(s["jpg"]).hexdigest(), int(s["cls"])) for s in _samples(expand_shards(shards["pattern"]), bad)
    )
    assert got == expected and not bad
    assert shards["samples"] == 400 and shards["shards"] == 7 and shards["classes"] == images.classes
    assert is_shards(shards["pattern"]) and not is_shards(str(small["train"]))


def test_epochs_are_fixed_by_the_seed_and_a_resumed_epoch_replays_the_same_batches(shards, tmp_path):
    data = ShardData(shards["pattern"], 32, 16, workers=2, cache_dir=tmp_path, shuffle_buffer=50)
    assert (data.samples, data.num_classes, data.batches_per_epoch()) == (400, 10, 25)
    full = list(data.epoch(0))
    assert len(full) == 25 and full[0].crops[0].shape == (16, 3, 32, 32) and full[0].crops[0].dtype == torch.uint8
    assert len(set(full[0].labels.tolist())) > 3  # shards and the buffer mix the classes
    for start in (6, 7):  # either worker first
        resumed = list(data.epoch(0, start_batch=start))
        assert len(resumed) == 25 - start
        for a, b in zip(full[start:], resumed):
            assert torch.equal(a.crops[0], b.crops[0]) and torch.equal(a.crops[1], b.crops[1])
            assert torch.equal(a.labels, b.labels)
    again = list(ShardData(shards["pattern"], 32, 16, workers=2, cache_dir=tmp_path, shuffle_buffer=50).epoch(0))
    assert all(torch.equal(a.crops[0], b.crops[0]) for a, b in zip(full, again))
    assert not torch.equal(next(iter(data.epoch(1))).crops[0], full[0].crops[0])


def test_ranks_and_workers_read_disjoint_shards_and_make_the_same_number_of_steps(shards, tmp_path):
    ranks = [ShardData(shards["pattern"], 32, 16, workers=2, cache_dir=tmp_path, rank=r, world_size=2) for r in (0, 1)]
    parts = [set(ShardStream(d, 3, 0, 2)._my_shards(w)) for d in ranks for w in (0, 1)]
    assert sum(map(len, parts)) == 7 and set().union(*parts) == set(expand_shards(shards["pattern"]))
    assert [len(list(d.epoch(0))) for d in ranks] == [400 // 32] * 2  # 7 shards split 4 + 3, steps alike


def test_a_sample_that_does_not_decode_is_skipped_and_named(small, tmp_path):
    shard = tmp_path / "bad.tar"
    files = list_images(small["train"]).paths[:40]
    with tarfile.open(shard, "w") as tar:
        for i, path in enumerate(files):
            data = b"not an image" if i == 5 else path.read_bytes()
            for name, payload in ((f"{i:04d}.jpg", data), (f"{i:04d}.cls", b"1")):
                info = tarfile.TarInfo(name)
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
    data = ShardData(str(shard), 32, 8, cache_dir=tmp_path, shuffle_buffer=4, samples_per_epoch=40)
    batches = list(data.epoch(0))
    assert len(batches) == 5 and all(len(b.crops[0]) == 8 for b in batches)
    assert data.skipped == {f"{shard}#0005"}
    piped = ShardData(f"pipe:cat {shard}", 32, 8, cache_dir=tmp_path, shuffle_buffer=4)  # a command's output
    assert piped.samples == 40 and piped.labelled and len(list(piped.epoch(0))) == 5  # counted, not decoded
    with pytest.raises(ByolError, match="shards do not exist"):
        ShardData(str(tmp_path / "missing-{000..003}.tar"), 32, 8)


def test_cli_pretrains_on_shards_with_the_online_classifier_and_no_knn_monitor(small, shards, tmp_path, capsys):
    out = tmp_path / "run"
    args = [
        "pretrain", shards["pattern"], "--out", str(out), "--preset", "cpu", "--epochs", "1", "--batch-size", "32",
        "--width", "0.25", "--workers", "2", "--cache-dir", str(small["cache"]), "--no-progress",
        "--set", "augment.compile=off", "--set", "model.projector_hidden=64", "--set", "model.predictor_hidden=64",
        "--set", "run.log_every=4",
    ]  # fmt: skip
    assert cli(args) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["steps"] == 400 // 32 and summary["images_seen"] == 12 * 32
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert any("online_top1" in r for r in rows) and not any("knn_top1" in r for r in rows)
    assert (out / "encoder.safetensors").is_file()


@pytest.mark.parametrize("workers", [0, 2])
def test_a_resumed_epoch_replays_exactly_after_a_sample_that_did_not_decode(small, tmp_path, workers):
    """A bad sample early in the epoch took a slot and made no item. A new process resuming at batch 3
    reads the run's skip log, drops it alike in the replay, and makes the unbroken run's batches;
    without the log every resumed batch would shift by one sample."""
    shard = tmp_path / "bad.tar"
    files = list_images(small["train"]).paths[:80]
    with tarfile.open(shard, "w") as tar:
        for i, path in enumerate(files):
            payload = b"not an image" if i in (2, 3) else path.read_bytes()
            for name, data in ((f"{i:04d}.jpg", payload), (f"{i:04d}.cls", b"1")):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    make = lambda: ShardData(  # noqa: E731
        str(shard), 32, 8, cache_dir=tmp_path, shuffle_buffer=4, samples_per_epoch=64, workers=workers
    )
    first = make()
    first.keep_skip_log(tmp_path / "skipped-rank0.txt")
    full = list(first.epoch(0))
    assert (tmp_path / "skipped-rank0.txt").read_text().split() == [f"{shard}#0002", f"{shard}#0003"]
    resumed = make()
    resumed.keep_skip_log(tmp_path / "skipped-rank0.txt")
    for a, b in zip(full[3:], resumed.epoch(0, start_batch=3), strict=True):
        assert torch.equal(a.crops[0], b.crops[0]) and torch.equal(a.crops[1], b.crops[1])
    blind = list(make().epoch(0, start_batch=3))  # no log: the replay counts the bad slots as items
    assert not all(torch.equal(a.crops[0], b.crops[0]) for a, b in zip(full[3:], blind))


def test_folders_and_shards_are_train_sources_built_from_the_config(small, tmp_path):
    """``byol.build.train_source`` picks the source from data.path; both meet the ``TrainSource`` protocol
    the loop names, and say whether they are labelled (the online classifier's question); only the
    folder has images by index (``LabelledImages``, the kNN monitor's); each gets its own settings
    (the cache on the device, the skip log), the other's are not asked of it."""
    from helpers import tiny_config

    from byol.build import train_source as build_train_source
    from byol.data.loader import TrainData
    from byol.data.shards import ShardData, write_shards
    from byol.data.source import LabelledImages, TrainSource

    info = write_shards(str(small["train"]), tmp_path / "shards", shard_size=100)
    on_device = tiny_config(small["train"], small["cache"])
    on_device.data.cache_on_device = "on"
    folder = build_train_source(on_device, device=torch.device("cpu"), skip_log=tmp_path / "folder-skips.txt")
    shards = build_train_source(
        tiny_config(info["pattern"], small["cache"]), rank=1, world_size=2, device=torch.device("cpu"),
        skip_log=tmp_path / "skips.txt",
    )  # fmt: skip
    assert isinstance(folder, TrainData) and isinstance(shards, ShardData)
    assert isinstance(folder, TrainSource) and isinstance(shards, TrainSource)
    assert folder.labelled and shards.labelled and folder.num_classes == shards.num_classes == 10
    assert shards.rank == 1 and shards.batches_per_epoch() == 400 // (32 * 2)
    assert isinstance(folder, LabelledImages) and not isinstance(shards, LabelledImages)
    assert folder.cached.tensor is not None and shards.skip_log == tmp_path / "skips.txt"

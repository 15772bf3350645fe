"""The micro-batch: the batch a step sees stays whole, forward passes shrink to fit the memory."""

import logging

import pytest
import torch
from helpers import tiny_config
from safetensors.torch import load_file

from byol.data.batch import Batch
from byol.errors import ByolError
from byol.train import memory
from byol.train.memory import MemoryProbe, fit_micro_batch
from byol.train.pretrain import pretrain


def test_a_batch_splits_into_near_equal_parts_in_order():
    images = torch.arange(10 * 3 * 2 * 2, dtype=torch.uint8).view(10, 3, 2, 2)
    batch = Batch(images, None, torch.arange(10), torch.arange(10) + 100)
    parts = batch.split(3)
    assert [len(p.indices) for p in parts] == [4, 3, 3]
    assert torch.equal(torch.cat([p.images for p in parts]), images) and parts[1].labels.tolist() == [4, 5, 6]
    crops = Batch(None, (images, images + 1), None, torch.arange(10)).split(2)
    assert torch.equal(crops[1].crops[1], images[5:] + 1) and crops[0].labels is None
    assert batch.split(1) == [batch]


@pytest.mark.slow
def test_micro_batches_train_exactly_as_accumulated_batches(small, tmp_path):
    """Batch 32 in forward passes of 16 is the step of two accumulated batches of 16: the same
    images, views, gradients, lr and target update, bit for bit."""
    micro = tiny_config(small["train"], small["cache"], epochs=2, knn_every=0, deterministic=True)
    micro.optim.micro_batch = "16"
    accumulated = tiny_config(small["train"], small["cache"], epochs=2, knn_every=0, deterministic=True)
    accumulated.optim.batch_size, accumulated.optim.accumulate = 16, 2
    a = pretrain(micro, tmp_path / "micro", progress=False)
    b = pretrain(accumulated, tmp_path / "accumulated", progress=False)
    assert a.steps == b.steps == 2 * (400 // 32) and a.images_seen == b.images_seen
    wa, wb = (
        load_file(str(tmp_path / "micro" / "encoder.safetensors")),
        load_file(str(tmp_path / "accumulated" / "encoder.safetensors")),
    )
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def _probe(image_size: int):
    """A probe of a small BYOL model on a CPU, as ``byol pretrain`` builds it."""
    from byol import BYOL, build_encoder
    from byol.data.augment import TwoViewAugment, default_views
    from byol.device import DevicePolicy

    torch.manual_seed(0)
    enc = build_encoder("convnet", width=0.5, image_size=image_size)
    method = BYOL(enc.module, enc.feature_dim, 512, 64, 512)
    augment = TwoViewAugment(image_size, *default_views(image_size))
    return method, MemoryProbe(method, augment, image_size, DevicePolicy(torch.device("cpu")))


def test_on_a_cpu_the_micro_batch_is_sized_to_the_memory_available(monkeypatch):
    method, probe = _probe(96)
    before = {k: v.clone() for k, v in method.state_dict().items()}
    monkeypatch.setattr(memory, "available_bytes", lambda: 10**12)
    assert fit_micro_batch(4096, probe, torch.device("cpu"))[0] == 4096  # plenty: the whole batch
    monkeypatch.setattr(memory, "available_bytes", lambda: 200 * 2**20)
    micro, how = fit_micro_batch(4096, probe, torch.device("cpu"))
    assert 2 <= micro < 4096 and "MiB per image measured" in how
    # The chosen micro-batch fits: a step of it, measured, grows the peak memory by less than the
    # 200 MiB said to be free (the sizing aims at 60% of it); four times as many would take more.
    used = memory.peak_growth(lambda: probe(micro))
    assert used is not None and used < 200 * 2**20, used / 2**20
    assert memory.peak_growth(lambda: probe(4 * micro)) > 0.6 * 200 * 2**20
    assert all(torch.equal(before[k], v) for k, v in method.state_dict().items())  # probes left no trace
    assert all(p.grad is None for p in method.parameters())
    monkeypatch.setattr(memory, "available_bytes", lambda: 2**20)
    with pytest.raises(ByolError, match=r"not even a micro-batch of 2 fits; choose a smaller --image-size"):
        fit_micro_batch(4096, probe, torch.device("cpu"))


def test_a_run_logs_the_micro_batch_it_chose(small, tmp_path, caplog, monkeypatch):
    cfg = tiny_config(small["train"], small["cache"], epochs=1, knn_every=0)
    monkeypatch.setattr(memory, "available_bytes", lambda: 8 * 2**20)
    with caplog.at_level(logging.INFO):
        result = pretrain(cfg, tmp_path / "run", progress=False)
    line = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("micro-batch"))
    assert "forward passes" in line and "BatchNorm statistics are per pass" in line
    assert result.steps == 400 // 32  # the step still sees the whole batch
    import json

    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert 2 <= summary["micro_batch"] < 32

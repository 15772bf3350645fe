import os
from pathlib import Path

import pytest
from helpers import ForkServer, SmallDisk, cifar_subset, tiny_config

from byol.train.pretrain import pretrain

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
CIFAR = SHARED / "data" / "cifar10"


# Tests that take these fixtures train real runs (tens to hundreds of steps): slow, like the tests
# marked so by hand (child processes, compiles). `make test-fast` leaves them out.
SLOW_FIXTURES = {"learned_run", "unstepped_run", "short_run", "reference", "trial_data", "fork_server"}


# The longest files first, longest first (test-seconds of each on 2026-12-07's 2-core Xeon: 236, 145, 132,
# 94, 48, 33, 28, 21): ``make test``'s two workers (pytest-xdist, a file a worker at a time, in this order
# because the Makefile passes ``--no-loadscope-reorder``; xdist's default orders files by their number of
# tests) then end on short files and finish together. Without it one worker idled for about three minutes
# while the other finished the long files (532 s against 868 test-seconds); with it both workers were
# busy to within 5 s of the end (329 s, 2026-12-07, a faster hour of the same host).
FIRST = (
    "test_learning.py", "test_pretrain.py", "test_benchmarks.py", "test_reliability.py", "test_hub.py",
    "test_ablate.py", "test_evaluate.py", "test_compare.py",
)  # fmt: skip


def pytest_collection_modifyitems(config, items):
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
    rank = {name: i for i, name in enumerate(FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(FIRST)))  # stable: the rest keep their order


@pytest.fixture(scope="session", autouse=True)
def cold_image_cache(tmp_path_factory):
    """Decoded images go to a folder of this test session (children inherit it): a developer's warm
    ~/.cache/byol must not hide what a cold cache does on CI."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BYOL_CACHE_DIR", str(tmp_path_factory.mktemp("byol-cache")))
        yield


@pytest.fixture(scope="session")
def fork_server(tmp_path_factory, cold_image_cache):
    """Children for the kill tests, forked from one warm Python (``helpers.ForkServer``)."""
    server = ForkServer(tmp_path_factory.mktemp("children"))
    yield server
    server.close()


@pytest.fixture
def small_disk(tmp_path):
    """A real file system of its own: a 64 MiB tmpfs at ``tmp_path/disk`` (``helpers.SmallDisk``:
    ``resize`` it, ``fill`` it), unmounted after the test. Skipped, saying why, where mounting is
    refused (mount needs root or CAP_SYS_ADMIN)."""
    disk = SmallDisk.mount(tmp_path / "disk", 64 * 2**20)
    yield disk
    disk.unmount()


@pytest.fixture(scope="session")
def cifar_root() -> Path:
    if not (CIFAR / "train").is_dir():
        message = f"CIFAR-10 JPEGs not found at {CIFAR} (../shared/data beside the checkout)"
        if os.environ.get("CI"):
            pytest.fail(message + ": CI must run the tests that need them")
        pytest.skip(message)
    return CIFAR


@pytest.fixture(scope="session")
def synthetic(tmp_path_factory):
    """``small``'s layout without ../shared: 40 random 32 px PNGs in each of 10 classes (train) and 20
    (test), for tests that need a folder of images but nothing real in them: these never skip."""
    import numpy as np
    from PIL import Image

    base = tmp_path_factory.mktemp("synthetic")
    rng = np.random.default_rng(0)
    for split, n in (("train", 40), ("test", 20)):
        for c in range(10):
            (base / split / f"class{c}").mkdir(parents=True)
            for i in range(n):
                pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(base / split / f"class{c}" / f"{i}.png")
    return {"train": base / "train", "test": base / "test", "cache": base / "cache"}


@pytest.fixture(scope="session")
def small(cifar_root, tmp_path_factory):
    base = tmp_path_factory.mktemp("cifar")
    return {
        "train": cifar_subset(cifar_root, "train", 40, base / "train"),
        "test": cifar_subset(cifar_root, "test", 20, base / "test"),
        "cache": base / "cache",
    }


@pytest.fixture(scope="session")
def short_run(small, tmp_path_factory):
    """Six epochs on 400 images: the run the other tests inspect."""
    run_dir = tmp_path_factory.mktemp("run")
    cfg = tiny_config(small["train"], small["cache"], epochs=6, knn_every=2)
    result = pretrain(cfg, run_dir, progress=False)
    return run_dir, result


def learned_config(train: Path, cache: Path, epochs: int = 12):
    """The learning tests' run: convnet width 0.25, heads 512, batch 128 (78 steps an epoch on 10,000
    images), precision ``auto`` (bf16 where the CPU has AMX or AVX-512 BF16, else fp32), no kNN monitor."""
    cfg = tiny_config(train, cache, epochs=epochs, knn_every=0, log_every=50, precision="auto")
    cfg.model.width, cfg.model.projector_hidden, cfg.model.predictor_hidden = 0.25, 512, 512
    cfg.optim.batch_size = 128
    return cfg


@pytest.fixture(scope="session")
def learned_run(cifar_root, tmp_path_factory):
    """~940 steps on 10,000 real CIFAR images (about three minutes on 2 cores): enough for learning to show.

    Scored on 5,000 test images, where the standard error of a difference of two accuracies is about
    one point. Measured on the 2-core AMD EPYC (fp32), 173 s of training, top-1 untrained / BatchNorm-
    adapted untrained / unstepped run / trained: kNN 32.7 / 36.8 / 36.7 / 41.2%, fast linear 41.7 / 41.3
    / 41.9 / 46.8%, augmented linear (one epoch) 10.5 / 20.5 / 20.3 / 34.1%.
    """
    base = tmp_path_factory.mktemp("learned")
    train = cifar_subset(cifar_root, "train", 1000, base / "train")
    test = cifar_subset(cifar_root, "test", 500, base / "test")
    pretrain(learned_config(train, base / "cache"), base / "run", progress=False)
    return base / "run", train, test


@pytest.fixture(scope="session")
def unstepped_run(learned_run):
    """``learned_run``'s configuration with the break the learning tests must catch: the optimiser never
    steps. Forward and backward passes in train mode still move BatchNorm's running statistics; no weight
    changes. One epoch (78 steps): with BatchNorm's momentum of 0.1 the statistics forget their start
    within about 50 steps, so twelve epochs would end on the same ones."""
    import byol.train.engine

    run_dir, train, _ = learned_run
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(byol.train.engine, "guarded_step", lambda optimizer, skip: None)
        pretrain(
            learned_config(train, run_dir.parent / "cache", epochs=1), run_dir.parent / "unstepped", progress=False
        )
    return run_dir.parent / "unstepped"

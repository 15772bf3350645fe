"""Labels matched by class name wherever two splits meet (byol.data.labels): every protocol scores a test
folder that lacks some of train's classes as the full folder restricted to its images, and refuses a class
that train lacks in one line.

The check of "restricted to its images" is a count: split the test folder into the images of one class
and the rest, and the hits of the two parts add up to the hits of the whole. Labels matched by position
break it (every class after the absent one is shifted, and the absent class alone is scored as the first:
a 3-epoch tiny run scored 25.0% on the whole folder and 7.8% without airplane).
"""

import json
import os
from pathlib import Path

import pytest
import torch
from helpers import tiny_config

from byol.cli.__main__ import main as cli
from byol.data.folder import list_images
from byol.data.labels import class_indices, labelled_as, labelled_splits
from byol.errors import ByolError
from byol.train.pretrain import pretrain

ABSENT = "cat"  # a class in the middle: matched by position, both parts would be scored wrong


def _linked(dest: Path, classes: dict[str, Path]) -> Path:
    """``dest/<name>/`` holding links to the images of each source folder."""
    for name, source in classes.items():
        (dest / name).mkdir(parents=True)
        for f in sorted(source.iterdir()):
            os.symlink(f.resolve(), dest / name / f.name)
    return dest


@pytest.fixture(scope="module")
def splits(small, tmp_path_factory):
    """The small test folder whole, without cat, cat alone, and a folder of foreign classes."""
    base, test = tmp_path_factory.mktemp("splits"), small["test"]
    classes = {d.name: d for d in sorted(test.iterdir())}
    return {
        "whole": test,
        "without": _linked(base / "without", {n: d for n, d in classes.items() if n != ABSENT}),
        "alone": _linked(base / "alone", {ABSENT: classes[ABSENT]}),
        "foreign": _linked(base / "foreign", {"x": classes["bird"], "y": classes["dog"]}),
    }


@pytest.fixture(scope="module")
def other_run(small, tmp_path_factory):
    """A second encoder for ``--against`` rows: one epoch of another seed."""
    run_dir = tmp_path_factory.mktemp("other") / "run"
    pretrain(tiny_config(small["train"], small["cache"], epochs=1, knn_every=0, seed=1), run_dir, progress=False)
    return run_dir


def _counts(top1: float, folder: Path) -> int:
    return round(top1 * len(list_images(folder, min_classes=1)))


def _assert_parts_add_up(scores: dict[str, float], splits) -> None:
    hits = {part: _counts(scores[part], splits[part]) for part in ("whole", "without", "alone")}
    assert hits["without"] + hits["alone"] == hits["whole"], (scores, hits)


def test_class_indices_match_by_name_and_refuse_a_class_the_reference_lacks():
    reference = ["airplane", "automobile", "bird", "cat"]
    assert class_indices(["automobile", "cat"], reference, "test", "train") == [1, 3]
    assert class_indices(reference, reference, "test", "train") == [0, 1, 2, 3]
    with pytest.raises(ByolError, match=r"^test: its class zebra is not among the 4 classes of train \(airplane, "):
        class_indices(["cat", "zebra"], reference, "test", "train")
    many = [f"c{i:02d}" for i in range(30)]
    with pytest.raises(ByolError, match=r"classes x, y are not among the 30 classes of train \(c00, .*c09 and 20 more"):
        class_indices(["x", "y"], many, "test", "train")


def test_a_split_is_relabelled_as_the_reference_s_classes(splits, small):
    train = list_images(small["train"])
    without = labelled_as(list_images(splits["without"]), train.classes, "without", "train")
    assert without.classes == train.classes and ABSENT not in {without.classes[y] for y in without.labels}
    for path, y in zip(without.paths, without.labels):  # each image's label is its own folder's class
        assert train.classes[y] == path.parent.name
    fit, alone = labelled_splits(str(small["train"]), str(splits["alone"]))  # one class folder is a split too
    assert set(alone.labels) == {fit.classes.index(ABSENT)}
    with pytest.raises(ByolError, match="has no labels: class folders"):
        labelled_splits(str(splits["alone"]), str(small["test"]))  # but not a reference to fit on


KNN = ["knn", "--k", "20"]
PROTOCOLS = {
    "knn": KNN,
    "linear": ["linear"],
    "linear-augmented": ["linear", "--augment", "--epochs", "1", "--batch-size", "64", "--lrs", "0.1"],
    "finetune": ["finetune", "--label-fraction", "0.25", "--epochs", "1", "--batch-size", "32", "--min-steps", "1"],
}


def _eval(capsys, protocol: list[str], run_dir, train, test, *extra) -> dict:
    argv = ["eval", protocol[0], str(run_dir), "--train", str(train), "--test", str(test), "--workers", "0",
            "--json", *protocol[1:], *extra]  # fmt: skip
    assert cli(argv) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


@pytest.mark.parametrize("name", PROTOCOLS)
def test_every_protocol_scores_a_test_folder_without_a_class_as_the_whole_restricted(
    name, short_run, small, splits, capsys
):
    run_dir, _ = short_run
    results = {part: _eval(capsys, PROTOCOLS[name], run_dir, small["train"], splits[part]) for part in splits if
               part != "foreign"}  # fmt: skip
    _assert_parts_add_up({part: r["top1"] for part, r in results.items()}, splits)
    assert results["without"]["top1"] > 0  # something to add up: the encoder scores above nothing


@pytest.mark.parametrize("name", PROTOCOLS)
def test_every_protocol_refuses_a_test_class_that_train_lacks_in_one_line(name, short_run, small, splits, capsys):
    run_dir, _ = short_run
    argv = ["eval", PROTOCOLS[name][0], str(run_dir), "--train", str(small["train"]), "--test",
            str(splits["foreign"]), "--workers", "0", *PROTOCOLS[name][1:]]  # fmt: skip
    assert cli(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert f"{splits['foreign']}: its classes x, y are not among the 10 classes of {small['train']} (airplane," in err


def test_baseline_and_against_rows_match_classes_by_name(short_run, other_run, small, splits, capsys):
    run_dir, _ = short_run
    rows = {}
    for part in ("whole", "without", "alone"):
        result = _eval(capsys, KNN, run_dir, small["train"], splits[part], "--baseline", "--against", str(other_run))
        rows[part] = {r["encoder"]: r["top1"] for r in result["encoders"]}
    assert list(rows["whole"]) == ["trained", "untrained", "bn-adapted", str(other_run)]
    for encoder in rows["whole"]:
        _assert_parts_add_up({part: rows[part][encoder] for part in rows}, splits)


def test_the_knn_monitor_scores_a_test_folder_without_a_class_and_refuses_a_foreign_one(short_run, small, splits):
    from byol.dist import DistInfo
    from byol.train.hooks import KnnMonitor
    from byol.train.metrics_file import MetricsWriter
    from byol.train.setup import build_run

    run_dir, _ = short_run
    cfg = tiny_config(small["train"], small["cache"], epochs=1, knn_every=1, knn_k=20).validate()
    run = build_run(cfg, run_dir.parent / "monitor", True, torch.device("cpu"), DistInfo())
    scores = {}
    for part in ("whole", "without", "alone"):
        run.cfg.data.knn_test = str(splits[part])
        scores[part] = KnnMonitor(run, MetricsWriter(run.run_dir, tensorboard=False)).evaluate()["knn_top1"]
    _assert_parts_add_up(scores, splits)
    run.cfg.data.knn_test = str(splits["foreign"])
    with pytest.raises(ByolError, match=r"--knn-test .*foreign: its classes x, y are not among the 10 classes of"):
        KnnMonitor(run, MetricsWriter(run.run_dir, tensorboard=False))
    # every rank refuses it, whether the monitor runs (rank 0, knn_every > 0) or not: no rank trains on alone
    import dataclasses

    for rank, every in ((0, 0), (1, 1), (1, 0)):
        run.cfg.run.knn_every = every
        ranked = dataclasses.replace(run, info=DistInfo(rank=rank, world_size=2))
        with pytest.raises(ByolError, match=r"--knn-test .*foreign: its classes x, y are not among"):
            KnnMonitor.wanted(ranked)


def test_the_ablations_knn_matches_classes_by_name_and_refuses_a_foreign_test_before_training(
    short_run, small, splits, tmp_path
):
    from byol.ablate.runner import AblationRunner
    from byol.ablate.variants import VARIANTS

    run_dir, _ = short_run
    base = tiny_config(small["train"], small["cache"], knn_k=20)
    scores = {}
    for part in ("whole", "without", "alone"):
        runner = AblationRunner(base, tmp_path / part, minutes=None, test=str(splits[part]), device="cpu")
        scores[part] = runner._knn(run_dir, 0, {})
    for figure in ("knn_top1", "untrained_top1", "bn_adapted_top1"):
        _assert_parts_add_up({part: s[figure] for part, s in scores.items()}, splits)
    runner = AblationRunner(base, tmp_path / "foreign", minutes=None, test=str(splits["foreign"]), epochs=1)
    with pytest.raises(ByolError, match=r"^--test .*foreign: its classes x, y are not among"):
        runner.run([VARIANTS["baseline"]])
    assert not (tmp_path / "foreign").exists()  # refused before a variant trained

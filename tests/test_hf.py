"""Hugging Face datasets in (issue 43): Parquet folders, ``save_to_disk`` folders and cached names,
written by the ``datasets`` library itself from real CIFAR JPEGs, read by every command."""

import hashlib
import io
import json
import logging

import numpy as np
import pytest
import torch

from byol.cli.__main__ import main as cli
from byol.data.folder import list_images, open_rgb
from byol.data.hf import is_hf, row_bytes, split_options
from byol.data.loader import TrainData
from byol.errors import ByolError

datasets = pytest.importorskip("datasets")


def _dataset(folder, bad_rows=()):
    """The images of an ImageFolder as a ``datasets.Dataset`` (image bytes as stored, ``ClassLabel``);
    rows in ``bad_rows`` get bytes that are no image, or no image at all (odd ones)."""
    images = list_images(folder)
    cells = []
    for i, p in enumerate(images.paths):
        if i in bad_rows:
            cells.append(None if i % 2 else {"bytes": b"not an image", "path": None})
        else:
            cells.append({"bytes": p.read_bytes(), "path": None})
    label = datasets.ClassLabel(names=images.classes)
    features = datasets.Features({"image": datasets.Image(), "label": label, "note": datasets.Value("string")})
    return datasets.Dataset.from_dict(
        {"image": cells, "label": images.labels, "note": [str(p.name) for p in images.paths]}, features=features
    )


@pytest.fixture(scope="module")
def hf(small, tmp_path_factory):
    """The ``small`` CIFAR subset (400 train, 200 test) as a Parquet folder in the Hub's layout (row
    groups of 64), as a ``DatasetDict`` saved to disk, and in a Hugging Face cache as the name ``tiny``."""
    base = tmp_path_factory.mktemp("hf")
    splits = {s: _dataset(small[s]) for s in ("train", "test")}
    for s, ds in splits.items():
        ds.to_parquet(str(base / "tiny" / "data" / f"{s}-00000-of-00001.parquet"), batch_size=64)
    datasets.DatasetDict(splits).save_to_disk(str(base / "disk"))
    return {"base": base, "parquet": base / "tiny", "disk": base / "disk", "small": small}


@pytest.fixture
def offline_cache(hf, tmp_path, monkeypatch):
    """``hf``'s Parquet folder loaded once into an empty Hugging Face cache, offline: ``hf:tiny`` is
    then found there by name, as a dataset downloaded earlier would be."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    datasets.load_dataset(str(hf["parquet"]))
    monkeypatch.chdir(tmp_path)  # "tiny" must come from the cache, not a folder of that name
    return tmp_path / "hf-cache"


def _digests(images):
    return [hashlib.sha256(images.read_bytes(i)).hexdigest() for i in range(len(images))]


def test_every_form_lists_the_folders_images_bytes_labels_and_classes_in_order(hf, offline_cache):
    folder = list_images(hf["small"]["train"])
    expected = [hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.paths]
    specs = [f"{hf['parquet']}#split=train", f"{hf['parquet']}/data/train-*.parquet", f"{hf['disk']}/train"]
    specs += [f"{hf['disk']}#split=train", "hf:tiny", "hf:tiny#split=train"]
    for spec in specs:
        assert is_hf(spec), spec
        rows = list_images(spec)
        assert (rows.labels, rows.classes) == (folder.labels, folder.classes), spec
        assert _digests(rows) == expected, spec
    parquet = list_images(f"{hf['parquet']}#split=train")
    assert len(parquet.rows.groups) == 7  # 400 rows in groups of 64: read a group at a time
    assert str(parquet.paths[70]).endswith("data/train-00000-of-00001.parquet[70]")
    assert np.array_equal(np.asarray(open_rgb(io.BytesIO(row_bytes(parquet.paths[70])))), np.asarray(folder.open(70)))
    assert not is_hf(str(hf["small"]["train"])) and not is_hf("cifar10")


def test_the_views_of_rows_equal_the_folders_through_the_cache_and_the_stream(hf, tmp_path):
    folder = TrainData(str(hf["small"]["train"]), 32, 40, cache_dir=tmp_path, workers=0)
    rows = TrainData(f"{hf['parquet']}#split=train", 32, 40, cache_dir=tmp_path, workers=0)
    assert rows.cached is not None and np.array_equal(np.asarray(rows.cached.array), np.asarray(folder.cached.array))
    again = TrainData(f"{hf['parquet']}#split=train", 32, 40, cache_dir=tmp_path, workers=0)
    assert rows.fingerprint()["count"] == 400 and again.fingerprint() == rows.fingerprint()  # what a resume checks
    specs = (str(hf["small"]["train"]), f"{hf['disk']}/train")
    streamed = [TrainData(s, 32, 40, cache="off", workers=2) for s in specs]
    for a, b in zip(*(d.epoch(1) for d in streamed), strict=True):  # forked workers read the rows
        assert torch.equal(a.crops[0], b.crops[0]) and torch.equal(a.crops[1], b.crops[1])
        assert torch.equal(a.labels, b.labels)


def test_bad_rows_are_skipped_and_named_like_bad_files(hf, tmp_path, caplog):
    ds = _dataset(hf["small"]["train"], bad_rows=(3, 10))
    ds.to_parquet(str(tmp_path / "bad.parquet"), batch_size=64)
    with caplog.at_level(logging.WARNING):
        data = TrainData(str(tmp_path / "bad.parquet"), 32, 40, cache_dir=tmp_path, workers=0)
    assert len(data) == 398 and data.skipped == {str(tmp_path / "bad.parquet[3]"), str(tmp_path / "bad.parquet[10]")}
    assert "skipped 2 of 400 images" in caplog.text
    streamed = TrainData(str(tmp_path / "bad.parquet"), 32, 40, cache="off", workers=0)
    list(streamed.epoch(0))
    assert streamed.skipped == data.skipped  # the stream replaces them by the next readable row


def test_wrong_options_are_one_line_errors_naming_the_dataset(hf, capsys, tmp_path):
    with pytest.raises(ByolError, match=r"no column 'img' for #image= \(columns: image, label, note\)"):
        list_images(f"{hf['parquet']}#split=test,image=img")
    with pytest.raises(ByolError, match="holds the splits test, train: pass .*#split=NAME"):
        list_images(str(hf["parquet"]))
    with pytest.raises(ByolError, match="DatasetDict of the splits train, test"):
        list_images(str(hf["disk"]))
    with pytest.raises(ByolError, match="unknown option 'colour'"):
        list_images(f"{hf['disk']}#split=test,colour=red")
    with pytest.raises(ByolError, match="label column 'note' is not integer class ids"):
        list_images(f"{hf['disk']}/test#label=note")
    assert list_images(f"{hf['disk']}/test#label=none").labels is None
    assert split_options("a/b#c") == ("a/b#c", {})  # a '#' without options belongs to the path
    spec = f"{hf['parquet']}#split=test,label=fine"
    assert cli(["embed", str(tmp_path / "no-run"), spec, "--out", str(tmp_path / "e.npy")]) == 2  # data first
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"byol embed: error: {spec}: no column 'fine' for #label= (columns: image, label, note)"]


def test_cli_pretrains_evaluates_embeds_and_finds_neighbours_on_hf_datasets(hf, offline_cache, tmp_path, capsys):
    small = hf["small"]
    out = tmp_path / "run"
    args = [
        "pretrain", f"{hf['parquet']}#split=train", "--out", str(out), "--preset", "cpu", "--epochs", "1",
        "--batch-size", "32", "--width", "0.25", "--workers", "0", "--cache-dir", str(small["cache"]), "--no-progress",
        "--set", "augment.compile=off", "--set", "model.projector_hidden=64", "--set", "model.predictor_hidden=64",
    ]  # fmt: skip
    assert cli(args) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["steps"] == 400 // 32 and json.loads((out / "summary.json").read_text())["images"] == 400
    assert (out / "encoder.safetensors").is_file()
    knn = ["eval", "knn", str(out), "--train", "hf:tiny", "--test", f"{hf['disk']}/test", "--json", "--workers", "0"]
    assert cli(knn) == 0
    folder_knn = ["eval", "knn", str(out), "--train", str(small["train"]), "--test", str(small["test"]), "--json"]
    assert cli([*folder_knn, "--workers", "0"]) == 0
    from_hf, from_folders = (json.loads(line) for line in capsys.readouterr().out.strip().splitlines()[-2:])
    assert from_hf["top1"] == pytest.approx(from_folders["top1"])  # the same images, the same score
    assert cli(["embed", str(out), f"{hf['disk']}#split=test", "--out", str(tmp_path / "e.npy"), "--workers", "0"]) == 0
    sidecar = json.loads((tmp_path / "e.json").read_text())
    assert len(sidecar["paths"]) == 200 and sidecar["paths"][5].endswith("test/data-00000-of-00001.arrow[5]")
    assert sidecar["classes"] == list_images(small["test"]).classes
    assert cli(["shard", f"{hf['disk']}#split=test", "--out", str(tmp_path / "sh"), "--shard-size", "64"]) == 0
    shards = json.loads((tmp_path / "sh" / "shards.json").read_text())
    assert (shards["samples"], shards["shards"], shards["classes"]) == (200, 4, sidecar["classes"])
    html = tmp_path / "g.html"
    assert cli(["neighbours", str(tmp_path / "e.npy"), "--out", str(html), "--k", "3", "--random", "2"]) == 0
    assert html.read_text().count("data:image/png;base64,") == 2 * 4


def test_the_hubs_other_layouts_and_paths_with_a_hash_sign_are_read_as_they_mean(hf, tmp_path):
    """Hash-suffixed shard names and the converter's split folders are splits; a real path holding '#' is a
    path; a folder of images and Parquet files is refused rather than read as either."""
    src = hf["parquet"] / "data"
    hashed = tmp_path / "hashed"
    converted = tmp_path / "converted" / "default"
    for split in ("train", "test"):
        (converted / split).mkdir(parents=True)
        (converted / split / "0000.parquet").write_bytes((src / f"{split}-00000-of-00001.parquet").read_bytes())
        hashed.mkdir(exist_ok=True)
        (hashed / f"{split}-00000-of-00001-3f2a9c.parquet").write_bytes(
            (src / f"{split}-00000-of-00001.parquet").read_bytes()
        )
    for base in (hashed, tmp_path / "converted"):
        with pytest.raises(ByolError, match="holds the splits test, train"):
            list_images(str(base))
        assert len(list_images(f"{base}#split=test")) == 200
    odd = tmp_path / "exp#seed=1"  # looks like options, is a folder
    (odd / "a").mkdir(parents=True)
    (odd / "a" / "x.png").write_bytes((hf["small"]["train"] / "airplane").iterdir().__next__().read_bytes())
    assert split_options(str(odd)) == (str(odd), {}) and len(list_images(str(odd))) == 1
    (odd / "emb.parquet").write_bytes((src / "test-00000-of-00001.parquet").read_bytes())
    with pytest.raises(ByolError, match="holds both image files and Parquet files"):
        list_images(str(odd))


def test_options_that_do_not_apply_broken_files_partial_labels_and_slices_are_one_line_errors(
    hf, offline_cache, tmp_path
):
    with pytest.raises(ByolError, match="#config= names a configuration of a dataset in the cache"):
        list_images(f"{hf['parquet']}#split=test,config=plain")
    with pytest.raises(ByolError, match="is one split .*drop #split="):
        list_images(f"{hf['disk']}/test#split=test")
    (tmp_path / "lfs.parquet").write_text("version https://git-lfs.github.com/spec/v1\noid sha256:0\nsize 9\n")
    with pytest.raises(ByolError, match=r"lfs.parquet: not a readable Parquet file"):
        list_images(str(tmp_path / "lfs.parquet"))
    ds = _dataset(hf["small"]["test"]).cast_column("label", datasets.Value("int64"))
    ds = ds.map(lambda row, i: {"label": -1 if i < 5 else row["label"]}, with_indices=True)
    ds.to_parquet(str(tmp_path / "partial.parquet"))
    with pytest.raises(ByolError, match="5 of 200 rows have no label in 'label'"):
        list_images(f"{tmp_path / 'partial.parquet'}#label=label")
    assert list_images(str(tmp_path / "partial.parquet")).labels is None  # found, not named: unlabelled, warned
    with pytest.raises(ByolError, match=r"part of its files \(40 of 400 rows\); slices are not read"):
        list_images("hf:tiny#split=train[:10%]")


def test_the_cache_built_by_threads_from_rows_equals_the_folders(hf, tmp_path):
    from byol.data.cache import load_cached

    folder, _ = load_cached(list_images(hf["small"]["train"]), 32, tmp_path / "a", workers=4)
    rows, kept = load_cached(list_images(f"{hf['parquet']}#split=train"), 32, tmp_path / "b", workers=4)
    assert kept == list(range(400)) and np.array_equal(np.asarray(rows), np.asarray(folder))

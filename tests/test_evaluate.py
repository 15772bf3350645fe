"""Using the representation: linear probe, fine-tuning, embeddings, export, ONNX, safe loading, report."""

import copy
import json
import pickle

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

from byol.cli.__main__ import main as cli
from byol.encoder_io import encoder_meta, load_encoder, load_encoder_with_meta, save_encoder
from byol.errors import ByolError
from byol.eval.linear import linear_probe
from byol.eval.protocols import class_balanced_subset
from byol.eval.runner import EncoderEval
from byol.models import build_encoder


def test_linear_probe_learns_a_separable_problem_and_picks_regularisation_on_held_out_data():
    g = torch.Generator().manual_seed(0)
    centers = torch.randn(10, 16, generator=g) * 3
    y = torch.arange(1000) % 10
    x = centers[y] + torch.randn(1000, 16, generator=g)
    result = linear_probe(x[:800], y[:800], x[800:], y[800:], 10)
    assert result["top1"] > 0.95 and result["top5"] >= result["top1"]
    assert result["weight_decay"] in (0.0, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2) and result["val_top1"] > 0.9


def test_linear_probe_on_features_that_carry_no_label_is_at_chance():
    """Top-5 of 10 classes on noise is near 0.5 and top-1 near 0.1: neither is trivially 1."""
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(2000, 16, generator=g), torch.randint(0, 10, (2000,), generator=g)
    result = linear_probe(x[:1500], y[:1500], x[1500:], y[1500:], 10)
    assert 0.02 < result["top1"] < 0.2 and 0.35 < result["top5"] < 0.65


def test_topk_accuracy_counts_a_label_among_the_k_best_scores():
    from byol.eval.knn import topk_accuracy

    scores = torch.tensor([[0.9, 0.8, 0.1, 0.0, 0.0, 0.0], [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]])
    assert topk_accuracy(scores, torch.tensor([1, 0]), ks=(1, 2, 5)) == {"top1": 0.0, "top2": 0.5, "top5": 0.5}


def test_class_balanced_subset_is_balanced_and_fixed_by_seed():
    labels = [i % 5 for i in range(1000)]
    subset = class_balanced_subset(labels, 0.1, seed=3)
    assert len(subset) == 100 and all(sum(labels[i] == c for i in subset) == 20 for c in range(5))
    assert subset == class_balanced_subset(labels, 0.1, seed=3)
    assert subset != class_balanced_subset(labels, 0.1, seed=4)
    assert len(class_balanced_subset(labels, 0.001)) == 5  # at least one per class
    with pytest.raises(ByolError):
        class_balanced_subset(labels, 0.0)
    fit, held_out = class_balanced_subset(labels, 0.1, seed=3, held_out=0.2)
    assert fit == subset and len(held_out) == 200 and not set(fit) & set(held_out)  # the same fraction, and
    assert all(sum(labels[i] == c for i in held_out) == 40 for c in range(5))  # validation images beside it


def test_eval_linear_augmented_and_finetune_cli(short_run, small, capsys):
    run_dir, _ = short_run
    common = ["--train", str(small["train"]), "--test", str(small["test"]), "--json", "--workers", "0"]
    args = [
        "eval",
        "linear",
        str(run_dir),
        *common,
        "--augment",
        "--epochs",
        "1",
        "--batch-size",
        "64",
        "--lrs",
        "0.1",
        "0.05",
    ]
    assert cli(args) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    # Chance is 10% on the 200 test images (standard error 2.1 points): each protocol must beat it by 3.
    assert out["protocol"] == "linear (augmented)" and out["lr"] in (0.1, 0.05) and out["top1"] > 0.165, out
    args = ["eval", "finetune", str(run_dir), *common, "--label-fraction", "0.25", "--epochs", "2", "--baseline"]
    assert cli([*args, "--min-steps", "20", "--lrs", "0.1", "0.02", "--batch-size", "32"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["labelled_images"] == 100 and "baseline_top1" in out and 0.165 < out["top1"] <= out["top5"], out
    # 100 images at batch 32: 3 steps an epoch, 7 epochs for 20 steps; the lr chosen on 40 held-out images
    assert (out["steps"], out["epochs"], out["val_images"]) == (21, 7, 40) and out["lr"] in (0.1, 0.02), out
    assert 0.1 <= out["linear_top1"] <= 1 and out["baseline_lr"] in (0.1, 0.02)  # each start picks its own
    assert cli(["eval", "finetune", str(run_dir), *common, "--label-fraction", "2"]) == 2
    assert "--label-fraction must be in (0, 1]" in capsys.readouterr().err
    assert cli(["eval", "finetune", str(run_dir), *common, "--label-fraction", "0.25", "--head-start", "probe"]) == 2
    assert "--head-start chooses the head of --lrs or --lr" in capsys.readouterr().err  # the grid tries both
    assert cli(["eval", "finetune", str(run_dir), *common, "--label-fraction", "1", "--epochs", "1"]) == 2
    assert "leaves no labelled images" in capsys.readouterr().err  # nothing held out to choose on


def test_the_linear_protocol_leaves_the_encoder_bit_identical_and_fine_tuning_changes_it(short_run, small):
    """Linear evaluation trains the head alone (BatchNorm statistics frozen too); fine-tuning trains both."""
    from byol.eval.protocols import _crop_flip_data, train_supervised

    run_dir, _ = short_run
    ev = EncoderEval.load(run_dir, workers=0)
    data, _ = _crop_flip_data(ev, str(small["train"]), str(small["test"]), 64)
    before = {k: v.clone() for k, v in ev.encoder.state_dict().items()}
    for finetune in (False, True):
        encoder = copy.deepcopy(ev.encoder)
        train_supervised(ev, encoder, data, epochs=1, lr=0.1, finetune=finetune)
        after = encoder.state_dict()
        same = [torch.equal(before[k], after[k]) for k in before]
        if finetune:
            assert not all(same)  # weights and BatchNorm statistics moved
        else:
            assert all(same)  # not one weight, running mean or count changed
    assert all(torch.equal(before[k], v) for k, v in ev.encoder.state_dict().items())  # the loaded one untouched


def test_eval_table_prints_the_figures_of_the_json_output(short_run, small, capsys):
    run_dir, _ = short_run
    args = ["eval", "linear", str(run_dir), "--train", str(small["train"]), "--test", str(small["test"])]
    assert cli([*args, "--workers", "0", "--baseline", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert cli([*args, "--workers", "0", "--baseline"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line.split()[1:3] for line in lines[2:5]}  # encoder, top-1, top-5, dim, seconds, ...
    assert lines[1].split()[:5] == ["encoder", "top-1", "top-5", "dim", "seconds"]
    assert rows == {
        "trained": [f"{result['top1']:.2%}", f"{result['top5']:.2%}"],
        "untrained": [f"{result['baseline_top1']:.2%}", f"{result['baseline_top5']:.2%}"],
        "bn-adapted": [f"{result['bn_adapted_top1']:.2%}", f"{result['bn_adapted_top5']:.2%}"],
    }
    assert lines[5] == f"bn-adapted: untrained, BatchNorm statistics re-estimated on {small['train']} (no training)"
    assert all(r["feature_dim"] == 64 and r["preprocessing"]["image_size"] == 32 for r in result["encoders"])


def test_embed_writes_one_row_per_image_in_order(short_run, small, tmp_path, capsys):
    run_dir, _ = short_run
    out = tmp_path / "emb.npy"
    assert (
        cli(["embed", str(run_dir), str(small["test"]), "--out", str(out), "--workers", "0", "--batch-size", "64"]) == 0
    )
    emb = np.load(out)
    side = json.loads(out.with_suffix(".json").read_text())
    files = sorted(p for p in small["test"].rglob("*.jpg"))
    assert emb.shape == (len(files), 64) and side["paths"] == [str(p) for p in files]
    assert side["labels"][0] == 0 and side["labels"][-1] == 9 and side["classes"][0] == "airplane"
    # Row i is the embedding of image i.
    encoder, meta = load_encoder_with_meta(run_dir)
    from PIL import Image

    from byol.eval.features import normalize_images

    img = torch.from_numpy(np.asarray(Image.open(files[7]).convert("RGB")).copy()).permute(2, 0, 1)[None]
    with torch.no_grad():
        direct = encoder(normalize_images(img, meta["mean"], meta["std"]))
    np.testing.assert_allclose(emb[7], direct[0].numpy(), atol=1e-4)


def test_embed_parquet(short_run, small, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    run_dir, _ = short_run
    out = tmp_path / "emb.parquet"
    assert cli(["embed", str(run_dir), str(small["test"]), "--out", str(out), "--workers", "0"]) == 0
    table = pq.read_table(out)
    assert table.num_rows == 200 and set(table.column_names) >= {"path", "embedding", "label", "class"}


@pytest.fixture
def resnet_run(tmp_path):
    """A run folder holding a width-1 ResNet-18 encoder (random weights, ImageNet stem)."""
    torch.manual_seed(0)
    enc = build_encoder("resnet18", image_size=64, small_images=False)
    with torch.no_grad():  # non-trivial BatchNorm statistics, so that they must travel too
        for m in enc.module.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    meta = encoder_meta("resnet18", 64, (0.5,) * 3, (0.25,) * 3, 512, small_images=False)
    save_encoder(enc.module, meta, tmp_path / "run")
    return tmp_path / "run"


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_export_loads_strictly_into_torchvision_with_identical_features(resnet_run, tmp_path, suffix, capsys):
    out = tmp_path / f"encoder{suffix}"
    assert cli(["export", str(resnet_run), "--out", str(out)]) == 0
    if suffix == ".pt":
        state = torch.load(out, weights_only=True)
    else:
        from safetensors.torch import load_file

        state = load_file(str(out))
    tv = torchvision.models.resnet18()
    tv.fc = nn.Identity()
    tv.load_state_dict(state, strict=True)
    ours = load_encoder(out)
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(tv.eval()(x), ours(x))
        torch.testing.assert_close(ours(x), load_encoder(resnet_run)(x))


@pytest.mark.slow
def test_onnx_export_matches_pytorch(resnet_run, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    out = tmp_path / "encoder.onnx"
    assert cli(["export", str(resnet_run), "--out", str(out), "--onnx"]) == 0
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    x = torch.randn(5, 3, 64, 64)  # another batch size than the export's example: dynamic batch
    (got,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        expected = load_encoder(resnet_run)(x).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-4)


class _Payload:
    def __reduce__(self):
        import os

        return (os.system, ("touch PWNED_BY_PICKLE",))


def test_a_pickle_with_a_payload_is_refused(resnet_run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    bad = tmp_path / "evil.pt"
    bad.write_bytes(pickle.dumps({"conv1.weight": _Payload()}))
    (tmp_path / "evil.json").write_text((resnet_run / "encoder.json").read_text())
    with pytest.raises(ByolError, match="cannot read encoder"):
        load_encoder(bad)
    assert not (tmp_path / "PWNED_BY_PICKLE").exists()
    from byol.train.checkpoint import load_checkpoint

    with pytest.raises(ByolError, match="cannot be read"):
        load_checkpoint(bad)
    assert not (tmp_path / "PWNED_BY_PICKLE").exists()


def test_report_renders_plots_and_a_self_contained_page(short_run, small, capsys):
    run_dir, _ = short_run
    assert cli(["report", str(run_dir), "--test", str(small["test"]), "--max-points", "150"]) == 0
    from PIL import Image

    for name in ("loss", "schedules", "collapse", "knn", "embedding"):
        png = run_dir / "report" / f"{name}.png"
        img = Image.open(png)
        assert img.size[0] >= 500 and img.size[1] >= 300
        pixels = np.asarray(img.convert("RGB").resize((100, 60))).reshape(-1, 3)
        colours = len(np.unique(pixels, axis=0))
        assert colours > 20, name  # something was drawn, not a blank canvas
    page = (run_dir / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 5 and "src='report/" not in page
    assert "Collapse diagnostics" in page and "Embeddings of test images" in page and "convnet" in page


@pytest.mark.parametrize("protocol", [["knn"], ["linear"], ["linear", "--augment", "--batch-size", "2"]])
def test_evaluation_on_an_unlabelled_folder_is_a_one_line_error(short_run, tmp_path, capsys, protocol):
    from PIL import Image

    run_dir, _ = short_run
    flat = tmp_path / "flat"
    flat.mkdir()
    for i in range(4):
        Image.new("RGB", (32, 32), (i * 50, 0, 0)).save(flat / f"{i}.png")
    code = cli(
        ["eval", protocol[0], str(run_dir), "--train", str(flat), "--test", str(flat), "--workers", "0", *protocol[1:]]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and "has no labels: class folders" in err and len(err.splitlines()) == 1


def test_bn_adapted_baseline_has_untrained_weights_and_the_folders_batch_statistics(synthetic):
    """The baseline that isolates BatchNorm: untrained()'s weights, running statistics measured on the images."""
    enc = build_encoder("convnet", width=0.25, image_size=32)
    meta = encoder_meta("convnet", 32, (0.5,) * 3, (0.25,) * 3, enc.feature_dim, 1.0, width=0.25)
    ev = EncoderEval(enc.module, meta, seed=3, workers=0)
    plain, adapted = ev.untrained(), ev.bn_adapted(str(synthetic["train"]))
    assert not adapted.encoder.training
    for (name, p), q in zip(plain.encoder.named_parameters(), adapted.encoder.parameters()):
        assert torch.equal(p, q), name  # no optimiser step: the weights are the seed's
    bn_plain = next(m for m in plain.encoder.modules() if isinstance(m, nn.BatchNorm2d))
    bn = next(m for m in adapted.encoder.modules() if isinstance(m, nn.BatchNorm2d))
    assert torch.equal(bn_plain.running_mean, torch.zeros_like(bn.running_mean))  # the untrained one: BN's init
    # the first BatchNorm's mean is exactly the mean of its input over all 400 images (update_bn: cumulative)
    first_conv = next(m for m in adapted.encoder.modules() if isinstance(m, nn.Conv2d))
    seen = []
    handle = first_conv.register_forward_hook(lambda m, i, o: seen.append(o.detach()))
    from byol.data.eval_stream import eval_images
    from byol.data.folder import list_images
    from byol.eval.features import normalize_images

    for images, _, _ in eval_images(list_images(synthetic["train"]), 32, 1.0, workers=0):
        adapted.encoder(normalize_images(images, meta["mean"], meta["std"]))
    handle.remove()
    mean = torch.cat(seen).mean(dim=(0, 2, 3))
    assert sum(len(s) for s in seen) == 400 and torch.allclose(bn.running_mean, mean, atol=1e-4)


def test_a_sidecar_that_disagrees_with_the_weights_header_is_refused(short_run, tmp_path):
    """encoder.json beside encoder.safetensors that another run wrote: the weights load (same shapes), but
    would be evaluated at the other run's size or normalisation; the header the weights carry says so."""
    import shutil

    run_dir, _ = short_run
    for name in ("encoder.safetensors", "encoder.json"):
        shutil.copy(run_dir / name, tmp_path / name)
    load_encoder_with_meta(tmp_path / "encoder.safetensors")  # as written: they agree
    meta = json.loads((tmp_path / "encoder.json").read_text())
    meta["image_size"], meta["mean"] = 64, [0.5, 0.5, 0.5]
    (tmp_path / "encoder.json").write_text(json.dumps(meta))
    with pytest.raises(ByolError, match=r"encoder.json does not describe encoder.safetensors .*image_size 64 vs 32"):
        load_encoder_with_meta(tmp_path)

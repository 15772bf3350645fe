"""timm backbones (`--backbone timm:<name>`, the byol[timm] extra): build, train, export, load, evaluate."""

import json

import numpy as np
import pytest
import timm
import torch

from byol.cli.__main__ import main as cli
from byol.config.presets import resolve
from byol.encoder_io import load_encoder, load_encoder_with_meta
from byol.errors import ByolError
from byol.eval.runner import EncoderEval, knn_evaluate
from byol.models import build_encoder
from byol.optim import param_groups


@pytest.mark.parametrize(
    "name, size, args, dim",
    [
        ("resnet10t", 32, {}, 512),
        ("convnext_atto", 64, {}, 320),
        ("mobilenetv3_small_050", 64, {}, 1024),  # a pre-logits head: its width, not num_features (576)
        ("vit_tiny_patch16_224", 32, {"patch_size": 4}, 192),  # a small ViT at 32 px: 8×8 patches of 4 px
        ("vit_small_patch16_224", 224, {}, 384),  # ViT-S/16 at 224 px
    ],
)
def test_timm_backbones_build_with_the_feature_size_of_their_output(name, size, args, dim):
    enc = build_encoder(f"timm:{name}", image_size=size, timm_args=args)
    with torch.no_grad():
        out = enc.module.eval()(torch.rand(2, 3, size, size))
    assert enc.feature_dim == dim and out.shape == (2, dim)
    if "vit" in name:
        assert tuple(enc.module.patch_embed.grid_size) == (size // enc.module.patch_embed.patch_size[0],) * 2


def test_a_vits_position_embedding_and_class_token_take_no_weight_decay():
    enc = build_encoder("timm:vit_tiny_patch16_224", image_size=32, timm_args={"patch_size": 4})
    decayed, excluded = param_groups(enc.module, 1e-6)
    excluded_ids = {id(p) for p in excluded["params"]}
    assert id(enc.module.pos_embed) in excluded_ids and id(enc.module.cls_token) in excluded_ids
    assert id(enc.module.patch_embed.proj.weight) in {id(p) for p in decayed["params"]}


def test_unknown_timm_models_and_misplaced_timm_args_are_one_line_errors(tmp_path):
    with pytest.raises(ByolError, match="timm has no model 'resnet_nope'; similar: .*resnet"):
        resolve("cpu", {"model": {"backbone": "timm:resnet_nope"}})
    with pytest.raises(ByolError, match="model.timm_args is for timm:<name> backbones"):
        resolve("cpu", {"model": {"backbone": "convnet", "timm_args": {"patch_size": 4}}})
    with pytest.raises(ByolError, match="or timm:<name>"):
        resolve("cpu", {"model": {"backbone": "resnet9000"}})


@pytest.mark.slow
def test_cli_pretrains_a_small_vit_then_export_load_and_knn_agree(small, tmp_path, capsys):
    out = tmp_path / "vit"
    args = [
        "pretrain", str(small["train"]), "--out", str(out), "--preset", "cpu", "--epochs", "1", "--batch-size", "64",
        "--backbone", "timm:vit_tiny_patch16_224", "--set", "model.timm_args.patch_size=4",
        "--set", "model.timm_args.depth=2", "--workers", "0", "--cache-dir", str(small["cache"]), "--no-progress",
        "--set", "augment.compile=off", "--set", "model.projector_hidden=64", "--set", "model.predictor_hidden=64",
    ]  # fmt: skip
    assert cli(args) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["steps"] == 400 // 64 and 0 < summary["final_loss"] < 8  # 2 − 2·cos, summed over two orders
    meta = json.loads((out / "encoder.json").read_text())
    assert meta["backbone"] == "timm:vit_tiny_patch16_224" and meta["timm_args"] == {"patch_size": 4, "depth": 2}
    assert meta["timm_version"] == timm.__version__ and meta["feature_dim"] == 192

    # Exported weights load strictly into the plain timm model and give the same features.
    assert cli(["export", str(out), "--out", str(tmp_path / "vit.safetensors")]) == 0
    from safetensors.torch import load_file

    plain = timm.create_model("vit_tiny_patch16_224", num_classes=0, img_size=32, patch_size=4, depth=2)
    plain.load_state_dict(load_file(str(tmp_path / "vit.safetensors")), strict=True)
    encoder, loaded_meta = load_encoder_with_meta(tmp_path / "vit.safetensors")
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(plain.eval()(x), encoder(x))
        torch.testing.assert_close(encoder(x), load_encoder(out)(x))
    assert loaded_meta["timm_args"] == meta["timm_args"]

    # The run folder and the exported file score alike: same weights, same evaluation view.
    trained = knn_evaluate(EncoderEval.load(out, workers=0), small["train"], small["test"])
    exported = knn_evaluate(EncoderEval.load(tmp_path / "vit.safetensors", workers=0), small["train"], small["test"])
    assert trained == exported and 0.1 < trained["top1"] <= trained["top5"] <= 1
    emb = tmp_path / "emb.npy"
    assert cli(["embed", str(out), str(small["test"]), "--out", str(emb), "--workers", "0"]) == 0
    assert np.load(emb).shape == (200, 192)

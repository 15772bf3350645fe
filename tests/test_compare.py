"""Was pretraining worth it? A run held against off-the-shelf encoders, each through its own preprocessing.

Nothing is downloaded: the tests write (random, seeded) weights into a torch hub cache and a Hugging
Face cache laid out exactly as torchvision and huggingface_hub lay theirs out, and check that what
byol loads from there computes what the model built directly computes.
"""

import json

import pytest
import torch
from helpers import cifar_subset
from safetensors.torch import save_file

from byol.cli.__main__ import main as cli
from byol.errors import ByolError
from byol.eval.pretrained import load_pretrained

TIMM_NAME = "resnet18.a1_in1k"


@pytest.fixture
def caches(tmp_path, monkeypatch):
    """A torch hub cache ($TORCH_HOME) with torchvision's resnet18 file and a Hugging Face cache with timm's
    resnet18.a1_in1k, both holding seeded random weights; Hugging Face offline. Returns the state dicts."""
    import huggingface_hub.constants as hf
    import timm
    import torchvision

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    weights = torchvision.models.ResNet18_Weights.DEFAULT
    file = tmp_path / "torch" / "hub" / "checkpoints" / weights.url.rsplit("/", 1)[1]
    file.parent.mkdir(parents=True)
    torch.manual_seed(1)
    tv_state = torchvision.models.resnet18(weights=None).state_dict()
    torch.save(tv_state, file)

    monkeypatch.setattr(hf, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(hf, "HF_HUB_OFFLINE", True)
    repo = tmp_path / "hf" / f"models--timm--{TIMM_NAME}"
    commit = "1" * 40
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    (repo / "snapshots" / commit).mkdir(parents=True)
    torch.manual_seed(2)
    timm_state = timm.create_model(TIMM_NAME, pretrained=False).state_dict()
    save_file(timm_state, repo / "snapshots" / commit / "model.safetensors")
    return {"torchvision": tv_state, "timm": timm_state}


def test_cached_torchvision_and_timm_weights_load_with_their_preprocessing_and_compute_the_models_features(caches):
    import timm
    import torchvision

    x = torch.rand(2, 3, 64, 64)
    encoder, meta = load_pretrained("torchvision:resnet18")
    direct = torchvision.models.resnet18(weights=None)
    direct.load_state_dict(caches["torchvision"])
    direct.fc = torch.nn.Identity()
    with torch.no_grad():
        torch.testing.assert_close(encoder(x), direct.eval()(x))
    assert meta["feature_dim"] == 512 and meta["image_size"] == 224 and meta["eval_crop"] == 224 / 256
    assert meta["mean"] == [0.485, 0.456, 0.406] and meta["backbone"] == "torchvision:resnet18"

    encoder, meta = load_pretrained(f"timm:{TIMM_NAME}")
    direct = timm.create_model(TIMM_NAME, pretrained=False, num_classes=0)
    direct.load_state_dict({k: v for k, v in caches["timm"].items() if not k.startswith("fc.")})
    with torch.no_grad():
        torch.testing.assert_close(encoder(x), direct.eval()(x))
    assert meta["feature_dim"] == 512 and meta["image_size"] == 224 and meta["eval_crop"] == 0.95  # its crop_pct


@pytest.mark.slow
def test_eval_knn_against_off_the_shelf_encoders_prints_one_row_each_in_their_own_preprocessing(
    caches, short_run, cifar_root, tmp_path, capsys
):
    """One command: the run, its untrained and BatchNorm-adapted twins, a torchvision and a timm encoder,
    each scored by the same kNN on the same images; the JSON names each row's feature size, seconds and
    preprocessing, and the table says it."""
    train = cifar_subset(cifar_root, "train", 5, tmp_path / "train")
    test = cifar_subset(cifar_root, "test", 3, tmp_path / "test")
    args = ["eval", "knn", str(short_run[0]), "--train", str(train), "--test", str(test), "--baseline"]
    args += ["--workers", "0", "--against", "torchvision:resnet18", "--against", f"timm:{TIMM_NAME}"]
    assert cli([*args, "--against", str(short_run[0]), "--json"]) == 0  # a run folder too: here the same run
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    rows = {r["encoder"]: r for r in result["encoders"]}
    same = rows.pop(str(short_run[0]))
    assert (same["top1"], same["top5"]) == (rows["trained"]["top1"], rows["trained"]["top5"])
    assert list(rows) == ["trained", "untrained", "bn-adapted", "torchvision:resnet18", f"timm:{TIMM_NAME}"]
    assert rows["trained"]["top1"] == result["top1"] and rows["untrained"]["top1"] == result["baseline_top1"]
    assert rows["trained"]["preprocessing"]["image_size"] == 32 and rows["trained"]["feature_dim"] == 64
    assert rows["torchvision:resnet18"]["preprocessing"] == {
        "image_size": 224, "eval_crop": 224 / 256, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]
    }  # fmt: skip
    assert rows[f"timm:{TIMM_NAME}"]["preprocessing"]["eval_crop"] == 0.95
    assert all(r["feature_dim"] == 512 and r["seconds"] > 0 for r in list(rows.values())[3:])
    assert all(0 <= r["top1"] <= r["top5"] <= 1 for r in rows.values())
    assert cli(args) == 0
    table = capsys.readouterr().out
    assert "torchvision:resnet18" in table and "224px, crop 0.875, ImageNet mean/std" in table
    assert "at its own size, crop, mean and std" in table


def test_off_the_shelf_encoders_that_are_not_there_are_one_line_each(caches, tmp_path, monkeypatch):
    with pytest.raises(ByolError, match=r"^torchvision:resnet99: torchvision has no model of that name"):
        load_pretrained("torchvision:resnet99")
    with pytest.raises(ByolError, match=r"^timm:no_such_net: timm has no model 'no_such_net'"):
        load_pretrained("timm:no_such_net")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    with pytest.raises(ByolError) as e:
        load_pretrained("torchvision:resnet18")
    path = tmp_path / "empty" / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    assert (
        f"not in the torch hub cache: put https://download.pytorch.org/models/resnet18-f37072fd.pth at {path}"
        in str(e.value)
        and "\n" not in str(e.value)
    )
    with pytest.raises(ByolError) as e:
        load_pretrained("timm:resnet34.a1_in1k")  # a real timm name whose weights are not in the cache
    message = str(e.value)
    assert message.startswith("timm:resnet34.a1_in1k: its pretrained weights are not in the Hugging Face cache")
    assert "models--timm--resnet34.a1_in1k" in message and "HF_HUB_OFFLINE=1" in message and "\n" not in message

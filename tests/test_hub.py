"""The encoder shared as a Hub folder: timm and byol load it (for real, no mocks), the card tells the truth."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import tiny_config

import byol
from byol.cli.__main__ import main as cli
from byol.encoder_io import HUB_WEIGHTS, load_encoder_with_meta
from byol.errors import ByolError
from byol.hub import export_hub, push
from byol.train.pretrain import pretrain

timm = pytest.importorskip("timm")
pytestmark = pytest.mark.slow


def _run(synthetic, out, backbone, small_images=None, timm_args=None):
    """Two steps of a real run (kNN monitor at the end): weights that are not the initial ones."""
    cfg = tiny_config(synthetic["train"], synthetic["cache"], epochs=2 / 12, knn_every=1, log_every=1)
    cfg.model.backbone, cfg.model.width, cfg.model.small_images = backbone, 1.0, small_images
    cfg.model.timm_args = timm_args or {}
    pretrain(cfg, out, progress=False)
    return out


@pytest.fixture(scope="module")
def runs(synthetic, tmp_path_factory):
    base = tmp_path_factory.mktemp("hub")
    return {
        "timm": _run(synthetic, base / "timm", "timm:resnet18"),
        "torchvision": _run(synthetic, base / "tv", "resnet18", small_images=False),
        "cifar": _run(synthetic, base / "cifar", "resnet18", small_images=True),
    }


def _images(n=4, side=32):
    return torch.rand(n, 3, side, side, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("kind, architecture", [("timm", "resnet18"), ("torchvision", "resnet18")])
def test_timm_loads_the_hub_folder_and_computes_byols_features(runs, tmp_path, kind, architecture):
    hub = export_hub(runs[kind], tmp_path / "hub")
    assert sorted(p.name for p in hub.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    config = json.loads((hub / "config.json").read_text())
    assert config["architecture"] == architecture and config["num_classes"] == 0 and config["num_features"] == 512
    assert config["pretrained_cfg"]["crop_pct"] == 1.0 and config["pretrained_cfg"]["input_size"] == [3, 32, 32]
    from safetensors.torch import load_file

    assert not any(k.startswith(("encoder.", "online", "module.")) for k in load_file(str(hub / HUB_WEIGHTS)))
    model = timm.create_model(f"local-dir:{hub}", pretrained=True).eval()
    ours = byol.load_encoder(runs[kind])
    with torch.no_grad():
        expected, got = ours(_images()), model(_images())
    assert got.shape == expected.shape == (4, 512)
    assert torch.allclose(got, expected, atol=1e-5), (got - expected).abs().max()
    view = timm.data.resolve_model_data_config(model)  # timm's preprocessing is the run's evaluation view
    assert view["crop_pct"] == 1.0 and tuple(view["input_size"]) == (3, 32, 32) and view["interpolation"] == "bicubic"
    assert list(view["mean"]) == config["byol"]["mean"] and list(view["std"]) == config["byol"]["std"]
    back = byol.load_encoder(hub)  # byol reads the folder as well
    with torch.no_grad():
        assert torch.equal(back(_images()), expected)


def test_byols_cifar_stem_loads_from_the_folder_with_byol_and_the_card_says_timm_cannot(runs, tmp_path):
    hub = export_hub(runs["cifar"], tmp_path / "hub")
    assert json.loads((hub / "config.json").read_text())["architecture"] == "byol:resnet18"
    with pytest.raises(RuntimeError):  # timm has no such model: it refuses, it does not load something else
        timm.create_model(f"local-dir:{hub}", pretrained=True)
    encoder, meta = load_encoder_with_meta(hub)
    with torch.no_grad():
        assert torch.equal(encoder(_images()), byol.load_encoder(runs["cifar"])(_images()))
    assert meta["small_images"] is True
    card = (hub / "README.md").read_text()
    assert "library_name: byol" in card and "timm has no model of this architecture" in card


def test_the_card_holds_the_runs_real_figures_and_evaluations_run_into_the_folder(runs, synthetic, tmp_path, capsys):
    run = runs["torchvision"]
    argv = ["eval", "knn", str(run), "--train", str(synthetic["train"]), "--test", str(synthetic["test"])]
    argv += ["--device", "cpu", "--workers", "0"]
    assert cli(argv) == 0
    capsys.readouterr()
    kept = json.loads((run / "eval" / "knn.json").read_text())
    assert kept["command"] == "byol " + " ".join(argv)
    hub = tmp_path / "hub"
    assert cli(["export", str(run), "--hub", str(hub)]) == 0
    card = (hub / "README.md").read_text()
    summary = json.loads((run / "summary.json").read_text())
    front = card.split("---")[1]
    assert "library_name: timm" in front and "- image-feature-extraction" in front and "- self-supervised" in front
    assert "license:" in front and "2006.07733" in card
    assert f"| data | synthetic0/train ({summary['images']:,} images) |" in card and summary["images"] == 400
    assert f"| epochs | {summary['epochs']:.4g} ({summary['steps']:,} steps) |" in card and summary["steps"] == 2
    assert "\n# resnet18 pretrained with BYOL on synthetic0/train\n" in card
    assert f"kNN top-1 {summary['knn_top1']:.2%}" in card
    assert f"knn top-1 {kept['top1']:.2%}" in card and kept["command"] in card


def test_push_uploads_the_hub_folder_and_says_failures_in_one_line(runs, tmp_path):
    """The Hub is not reachable here: an object standing in for ``HfApi`` records the calls and the
    folder it is given (the real upload is untried)."""
    seen = {}

    class Api:
        def create_repo(self, repo_id, **kw):
            seen["repo"] = (repo_id, kw["private"], kw["exist_ok"])

        def upload_folder(self, repo_id, folder_path, **kw):
            seen["files"] = sorted(p.name for p in os.scandir(folder_path))
            seen["config"] = json.loads((Path(folder_path) / "config.json").read_text())
            return "https://huggingface.co/someone/r18/commit/1"

    assert push(runs["timm"], "someone/r18", private=True, api=Api()).endswith("/commit/1")
    assert seen["repo"] == ("someone/r18", True, True)
    assert seen["files"] == ["README.md", "config.json", "model.safetensors"]
    assert seen["config"]["architecture"] == "resnet18"

    class Offline(Api):
        def create_repo(self, repo_id, **kw):
            raise ConnectionError("no route\nto host")

    with pytest.raises(ByolError, match="^push to someone/r18: ConnectionError: no route to host$"):
        push(runs["timm"], "someone/r18", api=Offline())


def test_the_sharing_guides_blocks_run_as_written(runs, tmp_path, monkeypatch):
    """docs/guide/share.md, "Sharing the encoder": its export line through the CLI, then its Python block in a
    fresh process, offline (``HF_HUB_OFFLINE=1``), the Hub repository it names in Hugging Face's cache
    as a download leaves it: what it loads four ways computes the same features, and a repository that
    is not there is one line. ``byol push`` needs the network: the test above stands in for it."""
    import re
    import shlex

    text = (Path(__file__).resolve().parents[1] / "docs" / "guide" / "share.md").read_text()
    shell = next(b for b in re.findall(r"```bash\n(.*?)```", text, re.S) if "byol push" in b)
    code = next(b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "local-dir:" in b)
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "r1").symlink_to(runs["timm"])
    monkeypatch.chdir(tmp_path)
    exports = [shlex.split(line.split("#")[0]) for line in shell.splitlines() if line.startswith("byol export")]
    assert exports and all(cli(argv[1:]) == 0 for argv in exports)
    repo = re.search(r'"hf-hub:([^"]+)"', code).group(1)
    snapshot = tmp_path / "hf" / f"models--{repo.replace('/', '--')}" / "snapshots" / ("0" * 40)
    shutil.copytree(tmp_path / "hub" / "r1", snapshot)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("0" * 40)
    check = (
        "\nimport torch\nx = torch.rand(2, 3, 32, 32)\nreference = byol.load_encoder('runs/r1')(x)\n"
        "with torch.no_grad():\n"
        "    assert torch.allclose(model.eval()(x), reference, atol=1e-5) and torch.equal(encoder(x), reference)\n"
        "print('same features')\n"
    )
    # The download path without a network: Hugging Face's cache filled as a download leaves it, offline.
    missing = "\ntry:\n    byol.load_encoder('hf-hub:someone/absent')\nexcept Exception as e:\n    print(e)\n"
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", code + check + missing], cwd=tmp_path, env=env, capture_output=True, text=True
    )  # fmt: skip
    assert proc.returncode == 0 and "same features" in proc.stdout, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1].startswith("hf-hub:someone/absent: ")  # one line, naming it

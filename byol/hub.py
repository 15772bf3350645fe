"""The encoder as a folder in the Hugging Face Hub's layout, for byol, timm and the Hub alike.

``byol export RUN --hub DIR`` writes three files:

- ``model.safetensors``: the encoder's weights alone, named as timm and torchvision name them (no
  prefix), byol's metadata in the header;
- ``config.json`` in timm's form: ``architecture``, ``num_classes: 0``, ``num_features``, the
  arguments that rebuild it (``model_args``) and a ``pretrained_cfg`` holding the evaluation view
  (input size, bicubic, ``crop_pct`` = the run's ``eval_crop``, mean, std); byol's own metadata
  under ``byol``;
- ``README.md``: a model card made from the run (what trained it, on what, for how long, how well).

``timm.create_model("local-dir:DIR", pretrained=True)`` builds it where timm has the network (any
``timm:`` backbone; byol's torchvision ResNets at width 1 with the ImageNet stem, whose names timm's
ResNets share); ``byol.load_encoder(DIR)`` loads every one, byol's CIFAR stem and convnet included.
``byol push`` uploads the folder; ``byol.load_encoder("hf-hub:OWNER/NAME")`` downloads and loads it.
"""

from __future__ import annotations

import json
import shlex
import tempfile
from pathlib import Path
from typing import Any

from safetensors.torch import save as safetensors_bytes

from byol.constants import TIMM_PREFIX, is_timm
from byol.encoder_io import HUB_CARD, HUB_CONFIG, HUB_WEIGHTS, load_encoder_with_meta
from byol.errors import ByolError
from byol.files import atomic_write
from byol.run_files import RunFiles

TIMM_RESNETS = ("resnet18", "resnet34", "resnet50")  # byol's torchvision ResNets, named alike in timm
PAPER = "https://arxiv.org/abs/2006.07733"


def timm_equivalent(meta: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """The timm model name and arguments that build this encoder, or None where timm has none."""
    if is_timm(meta["backbone"]):
        return meta["backbone"][len(TIMM_PREFIX) :], dict(meta.get("timm_args") or {})
    plain = meta["width"] == 1 and not meta["small_images"] and meta.get("norm", "batchnorm") == "batchnorm"
    if meta["backbone"] in TIMM_RESNETS and plain:
        return meta["backbone"], {}
    return None


def hub_config(meta: dict[str, Any]) -> dict[str, Any]:
    """``config.json``: timm's fields, and byol's metadata under ``byol``."""
    timm = timm_equivalent(meta)
    side = meta["image_size"]
    config: dict[str, Any] = {
        "architecture": timm[0] if timm else f"byol:{meta['backbone']}",
        "num_classes": 0,
        "num_features": meta["feature_dim"],
        "pretrained_cfg": {
            "input_size": [3, side, side],
            "interpolation": "bicubic",
            "crop_pct": meta["eval_crop"],
            "crop_mode": "center",
            "mean": list(meta["mean"]),
            "std": list(meta["std"]),
            "num_classes": 0,
        },
        "byol": meta,
    }
    if timm and timm[1]:
        config["model_args"] = timm[1]
    return config


def export_hub(source: str | Path, out: str | Path) -> Path:
    """Write the Hub folder of a run (or an encoder file) into ``out``; returns ``out``."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ByolError(f"--hub {out}: a file is there; give a folder")
    encoder, meta = load_encoder_with_meta(source)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in encoder.state_dict().items()}
    with atomic_write(out / HUB_WEIGHTS) as f:
        f.write(safetensors_bytes(state, metadata={"byol": json.dumps(meta), "format": "pt"}))
    with atomic_write(out / HUB_CONFIG, "w") as f:
        f.write(json.dumps(hub_config(meta), indent=2) + "\n")
    with atomic_write(out / HUB_CARD, "w") as f:
        f.write(model_card(Path(source), meta))
    return out


def push(source: str | Path, repo_id: str, private: bool = False, api=None) -> str:
    """Upload the Hub folder of ``source`` (a run, or a folder ``export_hub`` wrote) to ``repo_id``;
    returns the commit's address. Needs ``huggingface_hub`` (the ``byol[hub]`` extra) and a token
    (``huggingface-cli login`` or ``HF_TOKEN``)."""
    try:
        from huggingface_hub import HfApi
    except ImportError:
        raise ByolError("byol push needs huggingface_hub: pip install 'byol[hub]'") from None
    api = api or HfApi()
    source = Path(source)
    with tempfile.TemporaryDirectory() as tmp:
        folder = source if (source / HUB_CONFIG).exists() else export_hub(source, Path(tmp) / "hub")
        try:
            api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
            commit = api.upload_folder(
                repo_id=repo_id, folder_path=str(folder), repo_type="model", commit_message="byol: encoder"
            )
        except Exception as e:  # no token, no network, no rights: one line
            raise ByolError(f"push to {repo_id}: {type(e).__name__}: {' '.join(str(e).split())[:200]}") from None
    return str(getattr(commit, "commit_url", commit))


# ---- the model card -------------------------------------------------------------------------------


def run_facts(run_dir: Path) -> dict[str, Any]:
    """What a run folder says of itself: its config, summary and the evaluations run into it."""
    facts: dict[str, Any] = {}
    files = RunFiles(run_dir)
    if files.summary.exists():
        facts["summary"] = json.loads(files.summary.read_text())
    if files.config.exists():
        import yaml

        facts["config"] = yaml.safe_load(files.config.read_text())
    evals = sorted(files.evals.glob("*.json")) if files.evals.is_dir() else []
    facts["evaluations"] = [json.loads(p.read_text()) for p in evals]
    return facts


def model_card(source: Path, meta: dict[str, Any]) -> str:
    """README.md of the Hub folder: front matter for the Hub, then what the run was and measured."""
    facts = run_facts(source) if source.is_dir() else {"evaluations": []}
    timm = timm_equivalent(meta)
    config, summary = facts.get("config") or {}, facts.get("summary") or {}
    data = _dataset_name((config.get("data") or {}).get("path", ""))
    tags = ["image-feature-extraction", "byol", "self-supervised"] + (["timm"] if timm else [])
    front = [
        "---",
        f"library_name: {'timm' if timm else 'byol'}",
        "license: other  # set the licence of your weights and data",
        "tags:",
        *[f"- {t}" for t in tags],
        "pipeline_tag: image-feature-extraction",
        "---",
        "",
    ]
    body = [
        f"# {meta['backbone']} pretrained with BYOL on {data}",
        "",
        f"An image encoder trained without labels with BYOL ({PAPER}), by the `byol` Python package.",
        f"It maps a {meta['image_size']}×{meta['image_size']} image to a {meta['feature_dim']}-d feature vector.",
        "",
        *_loading(timm),
        *_training(meta, config, summary, data),
        *_results(summary, facts["evaluations"]),
        "## Citation",
        "",
        "Grill et al., *Bootstrap Your Own Latent: A New Approach to Self-Supervised Learning*, NeurIPS 2020,",
        f"{PAPER}.",
        "",
    ]
    return "\n".join(front + body)


def _dataset_name(path: str) -> str:
    """The data folder's name, with its parent's when the name is a split's (``cifar10/train``)."""
    p = Path(path)
    if p.name.lower() in ("train", "training", "val", "valid", "test", "images", "unlabeled", "unlabelled"):
        return f"{p.parent.name}/{p.name}" if p.parent.name else p.name
    return p.name or "unknown"


def _loading(timm: tuple[str, dict[str, Any]] | None) -> list[str]:
    lines = ["## Use", "", "```python"]
    if timm:
        lines += [
            "import timm",
            'model = timm.create_model("hf-hub:OWNER/NAME", pretrained=True)  # or "local-dir:DIR"',
            "",
        ]
    lines += ["import byol", 'encoder = byol.load_encoder("hf-hub:OWNER/NAME")  # or the folder', "```", ""]
    if not timm:
        lines += ["timm has no model of this architecture (byol's own stem or width): load it with byol.", ""]
    return lines


def _training(meta: dict[str, Any], config: dict, summary: dict, data: str) -> list[str]:
    optim, model = config.get("optim") or {}, config.get("model") or {}
    stem = "small-image" if meta["small_images"] else "ImageNet"
    rows = [
        ("backbone", f"{meta['backbone']} (width {meta['width']:g}, {stem} stem, {meta.get('norm', 'batchnorm')})"),
        ("method", model.get("method", "byol")),
        ("data", f"{data} ({summary['images']:,} images)" if "images" in summary else data),
        ("epochs", f"{summary['epochs']:.4g} ({summary['steps']:,} steps)" if "epochs" in summary else "?"),
        ("batch", f"{optim['batch_size']} × {optim.get('accumulate', 1)} accumulated per process" if optim else "?"),
        ("optimiser", f"{optim.get('optimizer', '?')}, base lr {optim.get('base_lr', '?')}"),
        ("τ_base", str(optim.get("tau_base", "?"))),
        ("evaluation view", f"{meta['image_size']} px, centre crop {meta['eval_crop']:g}, bicubic"),
    ]
    return ["## Training", "", "| | |", "|---|---|", *[f"| {k} | {v} |" for k, v in rows], ""]


def _results(summary: dict, evaluations: list[dict]) -> list[str]:
    lines = ["## Results", ""]
    if "knn_top1" in summary:
        lines.append(
            f"- kNN top-1 {summary['knn_top1']:.2%} on held-out training images (the monitor of `byol pretrain`, "
            "at the end of training)"
        )
    for e in evaluations:
        lines.append(f"- {e['protocol']} top-1 {e['top1']:.2%}, top-5 {e['top5']:.2%} on {Path(e['test']).name}: "
                     f"`{e['command']}`")  # fmt: skip
    if len(lines) == 2:
        lines.append("No evaluation was run into this run folder (`byol eval knn RUN --test TEST` writes one).")
    return [*lines, ""]


def eval_record(run_dir: Path, protocol: str, result: dict[str, Any], argv: list[str]) -> Path | None:
    """Keep an evaluation in ``RUN/eval/<protocol>.json`` (with its command), for the model card."""
    if not RunFiles(run_dir).is_run():
        return None
    path = RunFiles(run_dir).eval_record(protocol)
    path.parent.mkdir(exist_ok=True)
    with atomic_write(path, "w") as f:
        f.write(json.dumps({**result, "command": "byol " + shlex.join(argv)}, indent=1) + "\n")
    return path

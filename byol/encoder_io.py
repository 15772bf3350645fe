"""The encoder users keep: saved as safetensors beside a JSON of what builds it, loaded safely."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes
from torch import nn

from byol.constants import GROUP_CHANNELS, PAPER_EVAL_CROP, VERSION, is_small, is_timm
from byol.errors import ByolError
from byol.files import atomic_write
from byol.models.backbones import build_encoder, timm_module
from byol.run_files import RunFiles

log = logging.getLogger(__name__)

# A folder in the Hugging Face Hub's layout (byol.hub), and the prefix naming a Hub repository.
HUB_WEIGHTS, HUB_CONFIG, HUB_CARD, HUB_PREFIX = "model.safetensors", "config.json", "README.md", "hf-hub:"


def encoder_meta(
    backbone: str,
    image_size: int,
    mean,
    std,
    feature_dim: int,
    eval_crop: float = PAPER_EVAL_CROP,
    *,
    width: float = 1.0,
    small_images: bool | None = None,
    norm: str = "batchnorm",
    group_channels: int = GROUP_CHANNELS,
    timm_args: dict | None = None,
) -> dict[str, Any]:
    """What rebuilds and evaluates an encoder: backbone, width, stem, image size, normalisation, eval view
    (``byol.build.encoder_meta`` gives a run's)."""
    meta = {
        "backbone": backbone,
        "width": width,
        "small_images": small_images if small_images is not None else is_small(image_size),
        "image_size": image_size,
        "feature_dim": feature_dim,
        "mean": list(mean),
        "std": list(std),
        "eval_crop": eval_crop,
        "norm": norm,
        "byol_version": VERSION,
    }
    if norm == "groupnorm-ws":
        meta["group_channels"] = group_channels
    if is_timm(backbone):  # what rebuilds it: timm's arguments, and the version that built it
        meta.update(timm_args=dict(timm_args or {}), timm_version=timm_module().__version__)
    return meta


def write_weights(state: dict[str, torch.Tensor], meta: dict[str, Any], path: Path) -> Path:
    """``state`` as ``.safetensors`` (``meta`` in its header) or ``.pt``, and ``meta`` as ``.json`` beside it."""
    path = Path(path)
    state = {k: v.detach().contiguous().cpu() for k, v in state.items()}
    with atomic_write(path) as f:
        if path.suffix == ".safetensors":
            f.write(safetensors_bytes(state, metadata={"byol": json.dumps(meta)}))
        else:
            torch.save(state, f)
    write_meta(meta, path.with_suffix(".json"))
    return path


def write_meta(meta: dict[str, Any], path: Path) -> None:
    with atomic_write(path, "w") as f:
        f.write(json.dumps(meta, indent=2) + "\n")


def save_encoder(encoder: nn.Module, meta: dict[str, Any], run_dir: Path) -> Path:
    """Write ``RUN_DIR/encoder.safetensors`` and ``encoder.json`` atomically."""
    return write_weights(encoder.state_dict(), meta, RunFiles(run_dir).encoder)


def build_from_meta(meta: dict[str, Any]) -> nn.Module:
    if is_timm(meta["backbone"]):
        built_by, here = meta.get("timm_version"), timm_module().__version__
        if built_by and built_by != here:
            log.warning("encoder built with timm %s, loaded with timm %s", built_by, here)
    return build_encoder(
        meta["backbone"], width=meta["width"], image_size=meta["image_size"], small_images=meta["small_images"],
        norm=meta.get("norm", "batchnorm"), timm_args=meta.get("timm_args"),
        group_channels=meta.get("group_channels", 1),  # encoders saved before it was recorded: gcd(32, C) groups
    ).module  # fmt: skip


def _read_meta(file: Path) -> dict[str, Any]:
    """The encoder's metadata: its ``.json`` sidecar, or a ``.safetensors`` file's own header. Where
    both exist they must agree on every key they share (a weights file copied over another run's, with
    the old sidecar left beside it, would otherwise be evaluated at the wrong size or normalisation)."""
    sidecar = file.with_suffix(".json")
    meta = header = None
    if file.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(file), "pt") as f:
            text = (f.metadata() or {}).get("byol")
        header = json.loads(text) if text else None
    if sidecar.exists():
        meta = json.loads(sidecar.read_text())
        differ = sorted(k for k in set(meta) & set(header or {}) if meta[k] != header[k])
        if differ:
            said = ", ".join(f"{k} {meta[k]!r} vs {header[k]!r}" for k in differ[:4])
            raise ByolError(f"{sidecar} does not describe {file.name} (its header says otherwise: {said}); "
                            f"remove or restore {sidecar.name}")  # fmt: skip
    meta = meta if meta is not None else header
    if meta is None:
        raise ByolError(f"{file}: no {sidecar.name} beside it says which backbone it is")
    # Encoders written before byol recorded the evaluation view: the crop their evaluation used.
    meta.setdefault("eval_crop", 1.0 if is_small(meta["image_size"]) else PAPER_EVAL_CROP)
    return meta


def _read_state(file: Path, map_location) -> dict[str, torch.Tensor]:
    if file.suffix == ".safetensors":
        return load_file(str(file), device=str(map_location))
    # weights_only: tensors and plain containers only; a pickle carrying code is refused.
    state = torch.load(file, map_location=map_location, weights_only=True)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ByolError(f"{file} is not a state dict of tensors")
    return state


def load_encoder_with_meta(
    path: str | Path, map_location: str | torch.device = "cpu"
) -> tuple[nn.Module, dict[str, Any]]:
    """Like ``load_encoder``, also returning the metadata (backbone, image size, normalisation...)."""
    path = hub_snapshot(str(path)[len(HUB_PREFIX) :]) if str(path).startswith(HUB_PREFIX) else Path(path)
    file = RunFiles(path).encoder if path.is_dir() else path
    if path.is_dir() and not file.exists() and (path / HUB_WEIGHTS).exists():  # a folder byol export --hub wrote
        file = path / HUB_WEIGHTS
    if not file.exists():
        raise ByolError(f"no encoder at {file}; is {path} a finished run (byol pretrain writes {file.name})?")
    try:
        meta = _read_meta(file)
        state = _read_state(file, map_location)
    except ByolError:
        raise
    except Exception as e:  # corrupt file, refused pickle, bad JSON: one line naming the file
        msg = " ".join(str(e).split())[:200]
        raise ByolError(f"cannot read encoder {file}: {type(e).__name__}: {msg}") from None
    encoder = build_from_meta(meta)
    try:
        encoder.load_state_dict(state, strict=True)
    except RuntimeError as e:
        msg = " ".join(str(e).split())[:200]
        raise ByolError(f"{file} does not match {meta['backbone']} width {meta['width']}: {msg}") from None
    return encoder.to(map_location).eval(), meta


def hub_snapshot(repo_id: str) -> Path:
    """The folder of a Hub model repository (``byol push``), downloaded once into Hugging Face's cache
    (offline, ``HF_HUB_OFFLINE=1``: the cached one)."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise ByolError(f"{HUB_PREFIX}{repo_id} needs huggingface_hub: pip install 'byol[hub]'") from None
    try:
        return Path(snapshot_download(repo_id, allow_patterns=[HUB_WEIGHTS, HUB_CONFIG, HUB_CARD]))
    except Exception as e:  # not found, offline without a cached copy, no rights: one line
        raise ByolError(f"{HUB_PREFIX}{repo_id}: {type(e).__name__}: {' '.join(str(e).split())[:200]}") from None


def load_encoder(path: str | Path, map_location: str | torch.device = "cpu") -> nn.Module:
    """A pretrained encoder, ready in eval mode, from a run folder, ``.safetensors`` or ``.pt`` file,
    a folder ``byol export --hub`` wrote, or ``hf-hub:OWNER/NAME`` (a Hub repository ``byol push`` filled).

    Nothing is unpickled: safetensors, or ``torch.load(weights_only=True)`` for ``.pt``.
    """
    return load_encoder_with_meta(path, map_location)[0]


def export_encoder(source: str | Path, out: str | Path) -> Path:
    """Write the encoder of ``source`` as ``.safetensors`` or ``.pt`` (a plain state dict) + ``.json``.

    The state dict of a width-1 ResNet loads with ``strict=True`` into the torchvision model of the
    same name once its ``fc`` is ``nn.Identity()`` (and, for the small-image stem, its ``conv1``
    is a 3×3 stride-1 conv and ``maxpool`` an identity).
    """
    out = Path(out)
    if out.suffix not in (".safetensors", ".pt"):
        raise ByolError(f"--out {out}: use a .safetensors or .pt file name")
    encoder, meta = load_encoder_with_meta(source)
    return write_weights(encoder.state_dict(), meta, out)


def export_onnx(source: str | Path, out: str | Path, opset: int = 18) -> Path:
    """Export the encoder to ONNX with a dynamic batch dimension (needs ``onnx`` and ``onnxscript``)."""
    encoder, meta = load_encoder_with_meta(source)
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError:
        raise ByolError("--onnx needs the onnx and onnxscript packages: pip install onnx onnxscript") from None
    side = meta["image_size"]
    example = torch.randn(2, 3, side, side)
    batch = torch.export.Dim("batch", min=1)
    program = torch.onnx.export(
        encoder, (example,), dynamo=True, input_names=["images"], output_names=["features"],
        dynamic_shapes=({0: batch},), opset_version=opset, external_data=False,
    )  # fmt: skip
    out = Path(out)
    with atomic_write(out, mode=None) as tmp:
        program.save(str(tmp))
    write_meta(meta, out.with_suffix(".json"))
    return out

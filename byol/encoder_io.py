"""The encoder users keep: saved as safetensors beside a JSON of what builds it, loaded safely."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from byol.errors import ByolError
from byol.models.backbones import build_encoder

ENCODER_FILE = "encoder.safetensors"
ENCODER_META = "encoder.json"


def encoder_meta(model_cfg, image_size: int, mean, std, feature_dim: int) -> dict[str, Any]:
    from byol import __version__

    return {
        "backbone": model_cfg.backbone,
        "width": model_cfg.width,
        "small_images": model_cfg.small_images if model_cfg.small_images is not None else image_size <= 64,
        "image_size": image_size,
        "feature_dim": feature_dim,
        "mean": list(mean),
        "std": list(std),
        "byol_version": __version__,
    }


def save_encoder(encoder: nn.Module, meta: dict[str, Any], run_dir: Path) -> Path:
    """Write ``RUN_DIR/encoder.safetensors`` and ``encoder.json`` atomically."""
    run_dir = Path(run_dir)
    path, meta_path = run_dir / ENCODER_FILE, run_dir / ENCODER_META
    state = {k: v.detach().contiguous().cpu() for k, v in encoder.state_dict().items()}
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    save_file(state, str(tmp), metadata={"byol": json.dumps(meta)})
    os.replace(tmp, path)
    tmp_meta = meta_path.with_name(f".{meta_path.name}.tmp{os.getpid()}")
    tmp_meta.write_text(json.dumps(meta, indent=2) + "\n")
    os.replace(tmp_meta, meta_path)
    return path


def build_from_meta(meta: dict[str, Any]) -> nn.Module:
    return build_encoder(
        meta["backbone"], width=meta["width"], image_size=meta["image_size"], small_images=meta["small_images"]
    ).module


def load_encoder(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Load a pretrained encoder from a run folder or an ``encoder.safetensors`` file.

    Returns the encoder (eval mode) and its metadata (backbone, image size, normalisation...).
    Only safetensors are read: nothing is unpickled.
    """
    path = Path(path)
    file = path / ENCODER_FILE if path.is_dir() else path
    if not file.exists():
        raise ByolError(f"no encoder at {file}; is {path} a finished run (byol pretrain writes {ENCODER_FILE})?")
    meta_file = file.with_name(ENCODER_META)
    try:
        if meta_file.exists():
            meta = json.loads(meta_file.read_text())
        else:
            from safetensors import safe_open

            with safe_open(str(file), "pt") as f:
                meta = json.loads((f.metadata() or {})["byol"])
        state = load_file(str(file), device=str(map_location))
    except (OSError, ValueError, KeyError, json.JSONDecodeError, Exception) as e:
        raise ByolError(f"cannot read encoder {file}: {type(e).__name__}: {str(e)[:200]}") from None
    encoder = build_from_meta(meta)
    try:
        encoder.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ByolError(f"{file} does not match {meta['backbone']} width {meta['width']}: {str(e)[:200]}") from None
    return encoder.to(map_location).eval(), meta

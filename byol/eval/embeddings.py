"""Embeddings of a folder's images, computed once and kept: ``byol embed`` writes them, ``byol
neighbours`` reads them back (or computes and keeps them beside its gallery).

An embeddings file is ``NAME.npy`` (float32, one row per readable image, in the folder's order) with
``NAME.json`` beside it: the run, the folder, the encoder's metadata, the class names, and each row's
path and label.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from byol.errors import ByolError
from byol.files import atomic_write


@dataclass
class Embeddings:
    """One row per image: ``vectors`` (N, D), ``paths``, ``labels`` (or None), and what made them."""

    vectors: torch.Tensor
    paths: list[str]
    labels: list[int] | None
    classes: list[str]
    meta: dict[str, Any]  # run, data, encoder (its metadata)

    def write(self, out: Path) -> None:
        """``out`` (.npy) and its ``.json`` sidecar, each written atomically."""
        with atomic_write(out) as f:
            np.save(f, self.vectors.numpy().astype(np.float32))
        sidecar = {**self.meta, "classes": self.classes, "paths": self.paths, "labels": self.labels}
        with atomic_write(out.with_suffix(".json"), "w") as f:
            json.dump(sidecar, f)


def embed_folder(
    run: str, data: str, device: torch.device, workers: int | None = None, batch_size: int = 512, progress=True
) -> Embeddings:
    """The encoder of ``run`` (anything ``EncoderEval.load`` reads) over every readable image of ``data``,
    each as its evaluation view."""
    from byol.data.folder import list_images
    from byol.eval.runner import EncoderEval

    images = list_images(data)  # a folder without images fails before the encoder loads
    if not len(images):
        raise ByolError(f"{data}: no images (.jpg .jpeg .png .bmp .webp .tif) found")
    ev = EncoderEval.load(run, device, workers=workers, progress=progress)
    feats, labels, idx = ev.embed(images, batch_size)
    paths = [str(images.paths[i]) for i in idx.tolist()]
    return Embeddings(
        feats, paths, labels.tolist() if images.labels is not None else None, list(images.classes),
        {"run": str(run), "data": str(data), "encoder": ev.meta},
    )  # fmt: skip


def read_embeddings(path: str | Path) -> Embeddings:
    """An embeddings file ``byol embed`` wrote (``.npy`` with its ``.json``); one-line errors."""
    path = Path(path)
    sidecar = path.with_suffix(".json")
    if path.suffix != ".npy" or not path.is_file() or not sidecar.is_file():
        raise ByolError(
            f"{path}: not an embeddings file (byol embed RUN DATA --out NAME.npy writes one, with NAME.json)"
        )
    try:
        vectors = torch.from_numpy(np.load(path, allow_pickle=False)).float()
        info = json.loads(sidecar.read_text())
    except (OSError, ValueError) as e:
        raise ByolError(f"{path}: cannot read it ({type(e).__name__}: {str(e)[:200]})") from None
    if vectors.ndim != 2 or len(vectors) != len(info.get("paths", [])):
        raise ByolError(f"{path}: {tuple(vectors.shape)} vectors but {len(info.get('paths', []))} paths in {sidecar}")
    meta = {k: info[k] for k in ("run", "data", "encoder") if k in info}
    return Embeddings(vectors, info["paths"], info.get("labels"), info.get("classes", []), meta)

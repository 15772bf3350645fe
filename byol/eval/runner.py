"""Evaluations of an encoder on image folders: features once, then the protocol.

``EncoderEval`` is what every protocol shares: the encoder, its metadata (image size,
normalisation, evaluation view), where it runs and how images are read. Each image is seen as its
evaluation view (``byol.data.folder.center_view`` with the encoder's ``eval_crop``), whichever
protocol asks.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from byol.constants import KNN_K, KNN_TEMPERATURE
from byol.data.eval_stream import eval_images
from byol.data.folder import ImageList, list_images
from byol.data.labels import labelled_splits
from byol.encoder_io import build_from_meta, load_encoder_with_meta
from byol.eval.features import adapt_batchnorm, extract_features
from byol.eval.knn import knn_accuracy
from byol.eval.pretrained import is_pretrained, load_pretrained


@dataclass
class EncoderEval:
    """An encoder under evaluation.

    Args:
        encoder: maps normalised images ``(B, 3, S, S)`` to features ``(B, D)``.
        meta: its metadata (``byol.encoder_io.encoder_meta``): ``image_size``, ``mean``, ``std``,
            ``eval_crop``, ``feature_dim``.
        device: where features are computed and heads trained.
        workers: DataLoader workers for large images (default: the cores, at most 8).
        seed: of the untrained baseline, data order and augmentations of trained protocols.
        progress: show progress bars.
    """

    encoder: nn.Module
    meta: dict[str, Any]
    device: torch.device | str = "cpu"
    workers: int | None = None
    seed: int = 0
    progress: bool = False

    @classmethod
    def load(cls, source: str | Path, device: torch.device | str = "cpu", **options) -> EncoderEval:
        """The encoder of a run folder, an encoder file, a Hub folder or ``hf-hub:`` name
        (``byol.load_encoder``), or an off-the-shelf one: ``torchvision:<name>``, ``timm:<name>``
        (``byol.eval.pretrained``), each with the preprocessing its metadata gives."""
        if is_pretrained(str(source)):
            encoder, meta = load_pretrained(str(source), device)
        else:
            encoder, meta = load_encoder_with_meta(source, device)
        return cls(encoder, meta, device, **options)

    def untrained(self) -> EncoderEval:
        """The same backbone with fresh random weights (``seed``): the baseline every evaluation compares with."""
        torch.manual_seed(self.seed)
        return dataclasses.replace(self, encoder=build_from_meta(self.meta).eval().to(self.device))

    def bn_adapted(self, folder: str) -> EncoderEval:
        """The untrained baseline with its BatchNorm statistics adapted to ``folder``'s evaluation views.

        Its weights are ``untrained()``'s; only the running statistics are re-estimated on every image of
        ``folder`` (``byol.eval.features.adapt_batchnorm``). The gap between it and ``untrained()`` is what
        BatchNorm alone gains on these images: a trained encoder must beat this one to show learning.
        """
        base = self.untrained()
        adapt_batchnorm(
            base.encoder, self._views(list_images(folder)), self.device, self.meta["mean"], self.meta["std"]
        )
        return dataclasses.replace(base, encoder=base.encoder.eval())

    def features(self, images: ImageList, encoder: nn.Module | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Features and labels of the readable images of a labelled split (``byol.data.labels.labelled_splits``)."""
        feats, labels, _ = self.embed(images, encoder=encoder, desc=f"features {images.root}")
        return feats, labels

    def embed(
        self, images: ImageList, batch_size: int = 512, encoder: nn.Module | None = None, desc: str = "embed"
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Features, labels (-1 without classes) and indices into ``images`` of its readable images, each
        seen as this encoder's evaluation view."""
        encoder = (encoder or self.encoder).to(self.device)
        return extract_features(
            encoder, self._views(images, batch_size), self.device, self.meta["mean"], self.meta["std"], self.progress,
            desc, return_indices=True,
        )  # fmt: skip

    def _views(self, images: ImageList, batch_size: int = 512):
        return eval_images(images, self.meta["image_size"], self.meta["eval_crop"], workers=self.workers,
                           batch_size=batch_size)  # fmt: skip


def with_baselines(ev: EncoderEval, folder: str, evaluate: Callable[[EncoderEval], dict]) -> dict[str, dict]:
    """``evaluate`` of the trained encoder and of its two baselines: the same backbone untrained, and
    untrained with its BatchNorm statistics adapted to ``folder`` (the images the protocol fits on;
    ``EncoderEval.bn_adapted``). The gap between the baselines is BatchNorm's alone; learning is what a
    trained encoder gains over both. Without BatchNorm the two baselines are the same encoder, scored once.
    """
    scores = {"trained": evaluate(ev), "untrained": evaluate(ev.untrained())}
    has_bn = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in ev.encoder.modules())
    scores["bn-adapted"] = evaluate(ev.bn_adapted(folder)) if has_bn else scores["untrained"]
    return scores


def knn_evaluate(
    ev: EncoderEval, train: str, test: str, k: int = KNN_K, temperature: float = KNN_TEMPERATURE
) -> dict[str, float]:
    """Weighted kNN top-1/top-5 from the ``train`` folder's features to the ``test`` folder's."""
    fit, scored = labelled_splits(train, test)
    train_x, train_y = ev.features(fit)
    test_x, test_y = ev.features(scored)
    return knn_accuracy(train_x, train_y, test_x, test_y, k, temperature, len(fit.classes))

"""BYOL as a Lightning module, for users who train inside PyTorch Lightning (the byol[lightning] extra).

Built from the parts ``byol pretrain`` uses, nothing re-implemented: the method (``BYOL`` or
``SimCLR``) from the config, the two-view augmentation run on the batch on its device, LARS with its
parameter groups, the warmup + cosine lr and the cosine τ schedules over the trainer's steps, and the
target's move after each optimiser step.

    >>> import lightning.pytorch as L
    >>> from byol.lightning import BYOLModule
    >>> module = BYOLModule("cifar10", {"optim": {"batch_size": 256}})
    >>> L.Trainer(max_epochs=100, precision="bf16-mixed").fit(module, train_loader)   # doctest: +SKIP
    >>> module.encoder                                                                 # what you keep

``train_loader`` yields uint8 (or [0, 1] float) images ``N×3×H×W`` of one size, or tuples whose first
element they are (labels are ignored); its batch size must be ``optim.batch_size``, which sets the
learning rate (``base_lr × batch × accumulate_grad_batches × processes / 256``). Views of
``data.image_size`` are cropped from them on the device. What ``byol pretrain`` adds and this does
not: the image cache, checkpoints of its own (Lightning's apply), the monitors, skipping non-finite
steps, and ``--micro-batch``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch

from byol import build
from byol.config import Config
from byol.config.presets import resolve
from byol.data.batch import Batch
from byol.encoder_io import save_encoder
from byol.schedules import Plan, warmup_steps
from byol.train.engine import augmentation_generator, make_views

try:
    import lightning.pytorch as L
except ImportError:  # pragma: no cover - the message is the point
    raise ImportError("byol.lightning needs Lightning: pip install 'byol[lightning]'") from None


class BYOLModule(L.LightningModule):
    """BYOL (or SimCLR, ``model.method``) as a ``LightningModule``.

    Args:
        config: a ``byol.config.Config``, or a preset name or YAML file resolved with ``overrides``
            (nested dicts of config sections, as ``--set`` writes them).
        overrides: config values over the preset.
    """

    def __init__(self, config: Config | str = "cifar10", overrides: dict[str, Any] | None = None):
        super().__init__()
        self.cfg = config if isinstance(config, Config) else resolve(config, overrides or {})
        cfg = self.cfg
        if cfg.optim.accumulate != 1:
            raise ValueError("BYOLModule: accumulate with Trainer(accumulate_grad_batches=...), not optim.accumulate")
        if cfg.model.encoder_init != "default":
            raise ValueError(
                f"BYOLModule: model.encoder_init {cfg.model.encoder_init} needs the run's first batch before the "
                "target copies the encoder, which byol pretrain has and this module does not; use byol pretrain"
            )
        enc = build.encoder(cfg)
        self.method = build.method(cfg, enc.module, enc.feature_dim)
        self.augment = build.augmentation(cfg)
        self.memory_format = torch.channels_last if cfg.run.channels_last else torch.contiguous_format
        self.method.to(memory_format=self.memory_format)
        self.plan = Plan(0)  # laid once the Trainer knows its length (configure_optimizers, on_train_start)
        self.save_hyperparameters({"config": cfg.to_dict()})

    @property
    def encoder(self) -> torch.nn.Module:
        """The online encoder: what users keep."""
        return self.method.encoder

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Representations of already normalised images (the encoder's output)."""
        return self.encoder(images)

    # ---- optimisation -------------------------------------------------------------------------

    def peak_lr(self) -> float:
        """``byol.build.peak_lr`` (LARS, SGD: ``base_lr × global batch / 256``), the global batch counting the
        Trainer's ``accumulate_grad_batches`` and processes."""
        trainer = self._trainer
        accumulate, world = (trainer.accumulate_grad_batches, trainer.world_size) if trainer is not None else (1, 1)
        return build.peak_lr(dataclasses.replace(self.cfg.optim, accumulate=accumulate), world)

    @property
    def total_steps(self) -> int:
        return self.plan.total_steps

    @property
    def warmup_steps(self) -> int:
        return self.plan.warmup_steps

    def lr_factor(self, step: int) -> float:
        """The lr as a fraction of the peak (``byol.schedules.Plan``, as ``byol pretrain``): linear warmup,
        then cosine to 0."""
        return self.plan.lr_at(step)

    def configure_optimizers(self):
        cfg = self.cfg.optim
        total = self.trainer.estimated_stepping_batches
        if total == float("inf"):
            raise ValueError(
                "BYOLModule: give the Trainer max_epochs or max_steps (the lr and τ schedules need an end)"
            )
        self.plan = Plan(int(total))
        # Lightning refuses to clip the gradients of an optimiser that unscales them itself (fused kernels
        # under mixed precision): unfused when the Trainer clips.
        clips = bool(getattr(self.trainer, "gradient_clip_val", None))
        predictor = getattr(self.method, "predictor", None)
        optimizer = build.optimizer(cfg, self.method.trained_modules(), self.peak_lr(), not clips, predictor)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, self.lr_factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    # ---- the step -----------------------------------------------------------------------------

    def on_train_start(self) -> None:
        loader = self.trainer.train_dataloader
        batch_size = getattr(loader, "batch_size", None)
        if batch_size is not None and batch_size != self.cfg.optim.batch_size:
            raise ValueError(
                f"BYOLModule: the DataLoader's batch_size is {batch_size} but optim.batch_size is "
                f"{self.cfg.optim.batch_size}; they must agree (the learning rate follows optim.batch_size)"
            )
        # The warmup, in steps, once the loader's length is known (epochs × batches per epoch).
        batches = self.trainer.num_training_batches
        per_epoch = math.ceil(batches / self.trainer.accumulate_grad_batches) if batches != float("inf") else 0
        total = self.plan.total_steps
        self.plan = Plan(total, warmup_steps(self.cfg.optim.warmup_epochs, per_epoch, total), max(per_epoch, 1))
        for group in self.optimizers().optimizer.param_groups:  # LambdaLR set the first lr before this was known
            group["lr"] = group["initial_lr"] * self.lr_factor(self.global_step)
        self._target_step = self.global_step

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        images = batch[0] if isinstance(batch, list | tuple) else batch
        generator = augmentation_generator(self.cfg.run.seed, self.global_rank, self.global_step, 0, self.device)
        view1, view2 = make_views(self.augment, Batch.of_images(images), self.device, generator, self.memory_format)
        out = self.method(view1, view2)
        self.log("train/loss", out.loss.detach(), prog_bar=True)
        return out.loss

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        """After each optimiser step (not each accumulated batch): θ' ← τθ' + (1 − τ)θ."""
        if self.global_step == self._target_step:
            return
        self._target_step = self.global_step
        tau = self.plan.tau_at(self.global_step - 1, self.cfg.optim.tau_base)
        self.method.after_step(tau)
        self.log("train/tau", tau)

    def save_encoder(self, run_dir) -> None:
        """``run_dir/encoder.safetensors`` + ``encoder.json``: what ``byol eval``, ``embed`` and ``export`` read."""
        save_encoder(self.encoder, build.encoder_meta(self.cfg, self.method.feature_dim), run_dir)

"""Typed configuration: dataclasses with validation, YAML presets, flag overrides.

A run's resolved config is saved as ``RUN_DIR/config.yaml`` and inside every checkpoint.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from byol.constants import IMAGENET_MEAN, IMAGENET_STD, PAPER_EVAL_CROP, is_small
from byol.data.augment import ViewParams
from byol.dist import default_workers
from byol.errors import ByolError
from byol.files import atomic_write
from byol.models.backbones import available_backbones
from byol.models.heads import NORMS
from byol.optim import OPTIMIZERS


@dataclass
class DataConfig:
    path: str = ""
    """Folder of images (ImageFolder-style or unlabelled), or cifar10 / cifar100 / stl10."""
    image_size: int = 224
    """Side of the training views in pixels (32 for CIFAR)."""
    cache: str = "auto"
    """Decode images once into a uint8 cache: auto (images of at most 64 px), on, off."""
    cache_dir: str = ""
    """Where the cache lives (default $BYOL_CACHE_DIR or ~/.cache/byol)."""
    workers: int = field(default_factory=default_workers)
    """DataLoader workers for streamed (large) images (default: the cores this process may use, at most 8)."""
    monitor_fraction: float = 0.1
    """Part of a labelled folder held out as kNN queries for the monitor."""
    eval_crop: float = PAPER_EVAL_CROP
    """Evaluation view: shorter side resized to image_size / eval_crop, centre crop (224/256 in the
    paper; 1.0 for small images). Used by the kNN monitor and saved with the encoder for every evaluation."""

    def validate(self) -> None:
        if self.image_size < 8:
            raise ByolError(f"--image-size must be at least 8, got {self.image_size}")
        if self.cache not in ("auto", "on", "off"):
            raise ByolError(f"data.cache must be auto, on or off, got {self.cache!r}")
        if self.workers < 0:
            raise ByolError(f"--workers must be >= 0, got {self.workers}")
        if not 0 < self.monitor_fraction < 1:
            raise ByolError(f"data.monitor_fraction must be in (0, 1), got {self.monitor_fraction}")
        if not 0 < self.eval_crop <= 1:
            raise ByolError(f"data.eval_crop must be in (0, 1], got {self.eval_crop}")


@dataclass
class ModelConfig:
    backbone: str = "resnet50"
    """Encoder name from the registry (byol.available_backbones())."""
    width: float = 1.0
    """Channel multiplier of the backbone (0.25 for CPU-sized runs)."""
    small_images: bool | None = None
    """3×3 stride-1 stem without max-pool; default: image_size <= 64."""
    projector_hidden: int = 4096
    projection_dim: int = 256
    predictor_hidden: int = 4096
    norm: str = "batchnorm"
    """Normalisation in projector and predictor: batchnorm, layernorm, groupnorm, none."""
    use_predictor: bool = True
    """Ablation only: BYOL collapses without its predictor."""
    sync_bn: str = "auto"
    """BatchNorm statistics over all processes under torchrun: auto (on with CUDA), on, off.
    SyncBatchNorm needs CUDA; on CPU each process keeps its own statistics."""

    def validate(self) -> None:
        if self.backbone not in available_backbones():
            raise ByolError(
                f"--backbone {self.backbone!r} is unknown; choose one of {', '.join(available_backbones())}"
            )
        if self.width <= 0:
            raise ByolError(f"--width must be positive, got {self.width}")
        if self.norm not in NORMS:
            raise ByolError(f"model.norm must be one of {', '.join(NORMS)}, got {self.norm!r}")
        if min(self.projector_hidden, self.projection_dim, self.predictor_hidden) < 1:
            raise ByolError("head sizes must be positive")
        if self.sync_bn not in ("auto", "on", "off"):
            raise ByolError(f"model.sync_bn must be auto, on or off, got {self.sync_bn!r}")


@dataclass
class AugmentConfig:
    view1: ViewParams = field(default_factory=lambda: ViewParams(blur_p=1.0, solarize_p=0.0))
    view2: ViewParams = field(default_factory=lambda: ViewParams(blur_p=0.1, solarize_p=0.2))
    interpolation: str = "bilinear"
    """Interpolation of the batched crop: bilinear or bicubic (the paper's)."""
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    compile: str = "auto"
    """torch.compile the augmentation ops: auto (on when a C++ compiler or CUDA is there), on, off."""

    def validate(self) -> None:
        if self.interpolation not in ("bilinear", "bicubic"):
            raise ByolError(f"augment.interpolation must be bilinear or bicubic, got {self.interpolation!r}")
        if self.compile not in ("auto", "on", "off"):
            raise ByolError(f"augment.compile must be auto, on or off, got {self.compile!r}")


@dataclass
class OptimConfig:
    optimizer: str = "lars"
    """lars (the paper), sgd or adamw."""
    batch_size: int = 4096
    """Images per forward pass (per process); the effective batch is batch_size × accumulate × processes."""
    accumulate: int = 1
    """Micro-batches per optimiser step; the target is updated once per step, as the paper emulated big batches."""
    base_lr: float = 0.2
    """Learning rate per 256 images: lr = base_lr × effective batch / 256 (LARS, SGD). AdamW uses it as is."""
    weight_decay: float = 1.5e-6
    momentum: float = 0.9
    trust_coefficient: float = 1e-3
    clip_lr: bool = False
    """LARS: clip the adapted learning rate to the global one (the CIFAR recipe)."""
    warmup_epochs: float = 10.0
    """Linear warmup, then cosine decay to 0; capped at half of the run."""
    tau_base: float = 0.996
    """Start of the target decay rate τ, which rises to 1 with a cosine schedule."""
    scale_lr: bool = True
    """Apply the linear scaling rule batch/256 (off for AdamW presets)."""

    def validate(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ByolError(f"--optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.batch_size < 2:
            raise ByolError(f"--batch-size must be at least 2 (BatchNorm needs a batch), got {self.batch_size}")
        if self.accumulate < 1:
            raise ByolError(f"--accumulate must be at least 1, got {self.accumulate}")
        if not self.base_lr > 0:
            raise ByolError(f"--lr must be positive, got {self.base_lr}")
        if self.weight_decay < 0:
            raise ByolError(f"--weight-decay must be >= 0, got {self.weight_decay}")
        if not 0 <= self.tau_base <= 1:
            raise ByolError(f"--tau-base must be in [0, 1], got {self.tau_base}")
        if self.warmup_epochs < 0:
            raise ByolError(f"--warmup-epochs must be >= 0, got {self.warmup_epochs}")

    def peak_lr(self, world_size: int = 1) -> float:
        batch = self.batch_size * self.accumulate * world_size
        return self.base_lr * batch / 256 if self.scale_lr else self.base_lr


@dataclass
class RunConfig:
    epochs: float = 100
    """Length of the run in epochs (ignored when time_budget is set)."""
    time_budget: float | None = None
    """Minutes of training: schedules are laid over the steps this allows, estimated from the first steps."""
    seed: int = 0
    device: str = "auto"
    """auto (cuda when available), cpu, cuda, cuda:N."""
    precision: str = "auto"
    """auto (bf16 autocast on CUDA, fp32 on a CPU), fp32 or bf16."""
    channels_last: bool = True
    compile: bool = False
    """torch.compile the model (CUDA: faster after a minute of compiling)."""
    deterministic: bool = False
    """Deterministic kernels: a resumed run then equals an uninterrupted one exactly (CPU)."""
    log_every: int = 50
    """Steps between metrics lines (loss, lr, τ, images/s, collapse diagnostics)."""
    knn_every: float = 1.0
    """Epochs between kNN monitor evaluations when labels exist (0: off)."""
    knn_k: int = 200
    knn_temperature: float = 0.1
    knn_max_bank: int = 10000
    """At most this many training images form the monitor's kNN memory bank."""
    online_classifier: bool = True
    """Train a linear classifier on detached features to monitor progress (official BYOL does)."""
    checkpoint_every_minutes: float = 10.0
    """Also checkpoint inside an epoch this often (0: only at epoch ends)."""
    keep_checkpoints: int = 2

    def validate(self) -> None:
        if self.time_budget is None and not self.epochs > 0:
            raise ByolError(f"--epochs must be positive, got {self.epochs}")
        if self.time_budget is not None and not self.time_budget > 0:
            raise ByolError(f"--time-budget must be positive minutes, got {self.time_budget}")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise ByolError(f"--precision must be auto, fp32 or bf16, got {self.precision!r}")
        if self.log_every < 1:
            raise ByolError(f"--log-every must be at least 1, got {self.log_every}")
        if self.knn_k < 1:
            raise ByolError(f"--knn-k must be at least 1, got {self.knn_k}")
        if self.keep_checkpoints < 1:
            raise ByolError(f"--keep-checkpoints must be at least 1, got {self.keep_checkpoints}")
        if not (self.device in ("auto", "cpu", "cuda", "mps") or self.device.startswith("cuda:")):
            raise ByolError(f"--device must be auto, cpu, cuda or cuda:N, got {self.device!r}")


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)
    preset: str = ""

    def validate(self) -> Config:
        for section in (self.data, self.model, self.augment, self.optim, self.run):
            section.validate()
        return self

    def to_dict(self) -> dict[str, Any]:
        return _plain(dataclasses.asdict(self))


def _plain(value: Any) -> Any:
    """Tuples to lists, so that YAML and JSON round-trip."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _build(cls, values: dict[str, Any], where: str, base: Any = None):
    """Dataclass ``cls`` from a dict over ``base`` (default: ``cls()``), refusing unknown keys."""
    if not isinstance(values, dict):
        raise ByolError(f"config section {where!r} must be a mapping")
    base = cls() if base is None else base
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ByolError(f"unknown config key {where}.{unknown[0]}; known: {', '.join(sorted(known))}")
    kwargs = {}
    for name, value in values.items():
        default = getattr(base, name)
        if isinstance(default, ViewParams):
            value = value if isinstance(value, ViewParams) else _build(ViewParams, value, f"{where}.{name}", default)
        elif isinstance(value, list):
            value = tuple(value)
        elif isinstance(default, str) and isinstance(value, bool):
            value = "on" if value else "off"  # YAML reads on/off as booleans
        elif isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        kwargs[name] = value
    try:
        return dataclasses.replace(base, **kwargs)
    except (ValueError, TypeError) as e:
        raise ByolError(f"config {where}: {e}") from None


def config_from_dict(values: dict[str, Any]) -> Config:
    values = dict(values or {})
    sections = {
        "data": DataConfig,
        "model": ModelConfig,
        "augment": AugmentConfig,
        "optim": OptimConfig,
        "run": RunConfig,
    }
    unknown = sorted(set(values) - set(sections) - {"preset"})
    if unknown:
        raise ByolError(f"unknown config section {unknown[0]!r}; known: {', '.join(sections)}")
    built = {name: _build(cls, values.get(name, {}), name) for name, cls in sections.items()}
    return Config(**built, preset=values.get("preset", ""))


def merge(base: dict, override: dict) -> dict:
    """Deep-merge ``override`` into a copy of ``base``."""
    out = dict(base)
    for k, v in override.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


PRESETS = ("imagenet", "cifar10", "cpu")


def auto_preset(max_side: int) -> str:
    """``--preset auto``: the CIFAR recipe for small images, the paper's for the others."""
    return "cifar10" if is_small(max_side) else "imagenet"


def preset_dict(name: str) -> dict[str, Any]:
    """The YAML of a shipped preset, or of a user's YAML file."""
    if name in PRESETS:
        text = resources.files("byol").joinpath("presets", f"{name}.yaml").read_text()
    elif Path(name).is_file():
        text = Path(name).read_text()
    else:
        raise ByolError(f"--preset {name!r} is neither a preset ({', '.join(PRESETS)}) nor a YAML file")
    try:
        values = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        raise ByolError(f"preset {name}: invalid YAML: {e}") from None
    values.setdefault("preset", name)
    return values


# The official release ties (base lr, weight decay, τ_base) to the run length (ImageNet, batch 4096).
IMAGENET_BY_EPOCHS = {
    40: (0.45, 1e-6, 0.97),
    100: (0.45, 1e-6, 0.99),
    300: (0.3, 1e-6, 0.99),
    1000: (0.2, 1.5e-6, 0.996),
}


def imagenet_schedule_for(epochs: float) -> tuple[float, float, float]:
    """The official (base lr, weight decay, τ_base) of the run length nearest to ``epochs`` (log scale)."""
    nearest = min(IMAGENET_BY_EPOCHS, key=lambda e: abs(math.log(e) - math.log(max(epochs, 1e-9))))
    return IMAGENET_BY_EPOCHS[nearest]


def resolve(preset: str, overrides: dict[str, Any]) -> Config:
    """Preset, then the imagenet length rule for values the user did not set, then overrides."""
    values = preset_dict(preset)
    if values.get("preset") == "imagenet":
        epochs = overrides.get("run", {}).get("epochs", values.get("run", {}).get("epochs", 1000))
        lr, wd, tau = imagenet_schedule_for(epochs)
        values = merge(values, {"optim": {"base_lr": lr, "weight_decay": wd, "tau_base": tau}})
    return config_from_dict(merge(values, overrides)).validate()


def save_yaml(config: Config, path: Path) -> None:
    with atomic_write(path, "w") as f:
        yaml.safe_dump(config.to_dict(), f, sort_keys=False)


def load_yaml(path: Path) -> Config:
    try:
        return config_from_dict(yaml.safe_load(Path(path).read_text()))
    except yaml.YAMLError as e:
        raise ByolError(f"{path}: invalid YAML: {e}") from None

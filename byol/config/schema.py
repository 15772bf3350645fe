"""The configuration's schema: typed sections with their defaults, their flags and validation.

The ground floor of the configuration: it imports nothing of byol but the constants, the errors, the
views' value type and the registries the modules that own a key's names fill (``byol.config.registry``).
A field is declared with ``option``: its default, the flag of ``byol pretrain`` that sets it and whether a
resumed run may change it, in one place; ``byol.config.flags`` and ``byol.train.run_folder`` derive theirs
from it, its docstring is its ``--help`` and its reference (``byol.config.docs``). A dict or YAML becomes
a ``Config`` in ``byol.config.io``; ``byol.config.presets`` resolves a preset with the user's overrides;
``byol.build`` turns a ``Config`` into the objects a run trains. A run's resolved config is saved as
``RUN_DIR/config.yaml`` and inside every checkpoint.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from byol.config.registry import CHECKS, CHOICES, default_options, method_option_classes, option
from byol.config.views import VIEW1, VIEW2, ViewParams
from byol.constants import (
    DEFAULT_SHUFFLE_BUFFER,
    GROUP_CHANNELS,
    IMAGENET_MEAN,
    IMAGENET_STD,
    KNN_K,
    KNN_TEMPERATURE,
    PAPER_EVAL_CROP,
    default_workers,
    is_timm,
)
from byol.errors import ByolError


def section_classes() -> dict[str, type]:
    """Every section's class by the name a key starts with (``data``, …, ``methods.simclr``)."""
    sections = {cls.SECTION: cls for cls in (DataConfig, ModelConfig, AugmentConfig, OptimConfig, RunConfig)}
    return sections | {f"methods.{name}": cls for name, cls in method_option_classes().items()}


def declared(key: str) -> dataclasses.Field | None:
    """The field of ``section.key`` (``methods.simclr.temperature``), or None."""
    section, _, name = key.rpartition(".")
    cls = section_classes().get(section)
    return next((f for f in fields(cls) if f.name == name), None) if cls is not None else None


def option_name(key: str) -> str:
    """How a user sets ``section.key``: its flag, or ``--set section.key``."""
    f = declared(key)
    return (f.metadata.get("flag") if f is not None else None) or f"--set {key}"


def _requirer(section: Any) -> Callable[[str, bool, str], None]:
    """``require(key, ok, rule)`` for ``section`` (an object with ``SECTION``): a one-line error naming
    the option the way a user sets it, the rule and the value given."""

    def require(key: str, ok: bool, rule: str) -> None:
        if not ok:
            raise ByolError(f"{option_name(f'{section.SECTION}.{key}')} must be {rule}, got {getattr(section, key)!r}")

    return require


class _Section:
    """Validation helpers shared by the config sections."""

    SECTION: ClassVar[str] = ""

    def _require(self, key: str, ok: bool, rule: str) -> None:
        _requirer(self)(key, ok, rule)

    def _one_of(self, key: str) -> None:
        """``key``'s value is one of its choices (``CHOICES``), or passes the check its owner registered."""
        full, value = f"{self.SECTION}.{key}", getattr(self, key)
        if full in CHECKS:
            try:
                CHECKS[full](value)
            except ValueError as e:
                raise ByolError(f"{option_name(full)} {value!r} is unknown: {e}") from None
            return
        choices = CHOICES[full]()
        self._require(key, value in choices, "one of " + ", ".join(map(str, choices)))


def resumable_keys() -> tuple[str, ...]:
    """``section.key`` of every field declared ``resumable``."""
    return tuple(
        f"{section}.{f.name}"
        for section, cls in section_classes().items()
        for f in fields(cls)
        if f.metadata.get("resumable")
    )


@dataclass
class DataConfig(_Section):
    SECTION: ClassVar[str] = "data"

    path: str = option("", resumable=True)
    """Folder of images (ImageFolder-style or unlabelled), cifar10 / cifar100 / stl10, WebDataset
    tar shards (a .tar pattern such as train-{000000..000127}.tar, or pipe:COMMAND), or a Hugging Face
    dataset: Parquet files, a save_to_disk folder or hf:NAME from the local cache (#split=, #image=,
    #label= options)."""
    image_size: int = option(224, flag="--image-size")
    """Side of the training views in pixels (32 for CIFAR)."""
    cache: str = "auto"
    """Decode images once into a uint8 cache: auto (images of at most 64 px), on, off."""
    cache_dir: str = option("", flag="--cache-dir", resumable=True)
    """Where the cache lives (default $BYOL_CACHE_DIR or ~/.cache/byol)."""
    cache_on_device: str = option("auto", resumable=True)
    """Keep the uint8 cache on the training device: auto (on a GPU, when it takes at most a quarter of
    its free memory), on, off. Batches are then gathered there: no host copy per step."""
    workers: int = option(flag="--workers", default_factory=default_workers, resumable=True)
    """DataLoader workers for streamed (large) images (default: the cores this process may use, at most 8)."""
    monitor_fraction: float = 0.1
    """Part of a labelled folder held out as kNN queries for the monitor (when knn_test is not set)."""
    knn_test: str = option("", flag="--knn-test", resumable=True)
    """Labelled folder of test images (<class>/*.jpg, the training folder's classes): the kNN monitor then
    takes every training image as its bank and these as its queries, the protocol of byol eval knn, lightly
    and solo-learn. Unset: a held-out part of the training folder (monitor_fraction) is scored instead."""
    allow_changed: bool = option(False, resumable=True)
    """Resume on images other than those the run was trained on (refused by default)."""
    eval_crop: float = option(PAPER_EVAL_CROP, resumable=True)
    """Evaluation view: shorter side resized to image_size / eval_crop, centre crop (224/256 in the
    paper; 1.0 for small images). Used by the kNN monitor and saved with the encoder for every evaluation."""
    samples_per_epoch: int = 0
    """Tar shards: samples in an epoch (0: counted in a first pass over the shards, then cached)."""
    shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER
    """Tar shards: samples each reader holds to shuffle them (more: better mixed shards, more memory)."""

    def validate(self) -> None:
        self._require("image_size", self.image_size >= 8, "at least 8")
        self._one_of("cache")
        self._one_of("cache_on_device")
        self._require("workers", self.workers >= 0, ">= 0")
        self._require("monitor_fraction", 0 < self.monitor_fraction < 1, "in (0, 1)")
        self._require("eval_crop", 0 < self.eval_crop <= 1, "in (0, 1]")
        self._require("samples_per_epoch", self.samples_per_epoch >= 0, ">= 0")
        self._require("shuffle_buffer", self.shuffle_buffer >= 1, "at least 1")


@dataclass
class ModelConfig(_Section):
    SECTION: ClassVar[str] = "model"

    backbone: str = option("resnet50", flag="--backbone")
    """The encoder: a name from byol's registry (byol.available_backbones()), or timm:<name> (the byol[timm] extra)."""
    timm_args: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments of timm.create_model for a timm backbone, e.g. --set model.timm_args.patch_size=4."""
    width: float = option(1.0, flag="--width")
    """Channel multiplier of the backbone (0.25 for CPU-sized runs)."""
    small_images: bool | None = None
    """3×3 stride-1 stem without max-pool; default: image_size <= 64."""
    projector_hidden: int = 4096
    """Hidden width of the projector (4096 in the paper)."""
    projection_dim: int = 256
    """Output size of the projector and the predictor (256 in the paper)."""
    predictor_hidden: int = 4096
    """Hidden width of the predictor (4096 in the paper)."""
    method: str = option("byol", flag="--method")
    """The method: byol, or simclr, the contrastive baseline (NT-Xent, no predictor, no target), all else shared.
    A method's own options are its section of methods (methods.simclr.temperature)."""
    norm: str = option("batchnorm", flag="--head-norm")
    """Normalisation in projector and predictor: batchnorm, layernorm, groupnorm, affine (a learned scale and shift
    per feature, no statistics; with model.encoder_init bn-mimic set on the first batch), none (the heads' ablation)."""
    encoder_norm: str = option("batchnorm", flag="--encoder-norm")
    """Normalisation in the encoder: batchnorm, groupnorm-ws (GroupNorm + weight-standardised convolutions,
    no batch statistics anywhere; Richemond et al. 2020), affine (every BatchNorm a learned per-channel scale
    and shift, no statistics), or none (every BatchNorm removed: with model.norm none, no normalisation
    anywhere, the ablation that collapses)."""
    group_channels: int = GROUP_CHANNELS
    """groupnorm-ws only: at least this many channels per GroupNorm group (up to 32 groups; Wu & He 2018)."""
    encoder_init: str = option("default", flag="--encoder-init")
    """groupnorm-ws or affine only: default, or bn-mimic: each GroupNorm's (or per-channel affine's) scale and
    shift set on the first batch so every channel starts at zero mean and unit variance over the batch, as
    BatchNorm starts (Richemond et al. 2020: with affine, their BatchNorm-free network)."""
    use_predictor: bool = option(True, flag="--no-predictor")
    """Ablation only: BYOL collapses without its predictor."""
    projector_output_norm: bool = False
    """Ablation only: BatchNorm on the projector's output, as SimCLR's projector has and BYOL's has not."""
    sync_bn: str = "auto"
    """BatchNorm statistics over all processes under torchrun: auto (on with CUDA), on, off.
    SyncBatchNorm needs CUDA; on CPU each process keeps its own statistics."""

    def validate(self) -> None:
        self._one_of("backbone")
        if self.timm_args and not is_timm(self.backbone):
            raise ByolError(f"--set model.timm_args is for timm:<name> backbones, not {self.backbone!r}")
        self._require("width", self.width > 0, "positive")
        self._one_of("norm")
        self._one_of("encoder_norm")
        self._require("group_channels", self.group_channels >= 1, "at least 1")
        self._one_of("encoder_init")
        if self.encoder_init != "default" and self.encoder_norm not in ("groupnorm-ws", "affine"):
            raise ByolError(
                f"{option_name('model.encoder_init')} {self.encoder_init} sets GroupNorm or per-channel affine "
                f"layers: it needs {option_name('model.encoder_norm')} groupnorm-ws or affine, not {self.encoder_norm}"
            )
        self._one_of("method")
        if self.encoder_init != "default" and self.norm == "affine" and self.method != "byol":
            raise ByolError(f"{option_name('model.encoder_init')} {self.encoder_init} with {option_name('model.norm')}"
                            f" affine sets BYOL's projector and predictor, not {self.method}'s")  # fmt: skip
        if self.projector_output_norm and self.method != "byol":
            raise ByolError(f"--set model.projector_output_norm is BYOL's ablation, not {self.method}'s")
        for key in ("projector_hidden", "projection_dim", "predictor_hidden"):
            self._require(key, getattr(self, key) >= 1, "at least 1")
        self._one_of("sync_bn")


@dataclass
class AugmentConfig(_Section):
    SECTION: ClassVar[str] = "augment"

    view1: ViewParams = field(default_factory=lambda: VIEW1)  # ViewParams is frozen
    """The first view's crop, flip and colour parameters (the paper's table 6: blur 1.0, solarise 0.0)."""
    view2: ViewParams = field(default_factory=lambda: VIEW2)
    """The second view's (blur 0.1, solarise 0.2)."""
    interpolation: str = "bilinear"
    """Interpolation of the batched crop: bilinear or bicubic (the paper's)."""
    mean: tuple[float, float, float] = IMAGENET_MEAN
    """Per-channel mean the views are normalised with (ImageNet's)."""
    std: tuple[float, float, float] = IMAGENET_STD
    """Per-channel standard deviation the views are normalised with (ImageNet's)."""
    compile: str = "auto"
    """torch.compile the augmentation ops: auto (on when a C++ compiler or CUDA is there), on, off."""
    color: bool = option(True, flag="--no-color")
    """Colour jitter and grayscale in the views; off (--no-color), the paper's colour ablation (fig. 3b)."""
    jitter: str = "torchvision"
    """Colour ops: torchvision (brightness multiplies, contrast and saturation blend with luma; the PyTorch
    peers) or official (the release's TensorFlow ops: brightness adds, contrast per channel, saturation in HSV;
    blur pads with zeros)."""

    def views(self) -> tuple[ViewParams, ViewParams]:
        """The two views' parameters as training uses them (``color`` applied)."""
        if self.color:
            return self.view1, self.view2
        return tuple(dataclasses.replace(v, jitter_p=0.0, grayscale_p=0.0) for v in (self.view1, self.view2))

    def validate(self) -> None:
        self._one_of("interpolation")
        self._one_of("jitter")
        self._one_of("compile")
        self._require("std", all(v > 0 for v in self.std), "three positive numbers")


@dataclass
class OptimConfig(_Section):
    SECTION: ClassVar[str] = "optim"

    optimizer: str = option("lars", flag="--optimizer")
    """The optimiser: lars is the paper's."""
    batch_size: int = option(4096, flag="--batch-size")
    """Images per forward pass (per process); the effective batch is batch_size × accumulate × processes."""
    accumulate: int = option(1, flag="--accumulate")
    """Batches per optimiser step; the target is updated once per step, as the paper emulated big batches."""
    micro_batch: str = option("auto", flag="--micro-batch")
    """Images per forward pass: auto (what fits in memory; the whole batch when it fits) or a number.
    Gradients of the passes are accumulated, so the step sees the whole batch; BatchNorm sees each pass."""
    base_lr: float = option(0.2, flag="--lr", resumable=True)
    """Learning rate per 256 images: lr = base_lr × effective batch / 256 (LARS, SGD). AdamW uses it as is."""
    weight_decay: float = option(1.5e-6, flag="--weight-decay")
    """Weight decay of the weights (biases and norm parameters excluded, as the paper)."""
    momentum: float = 0.9
    """Momentum of LARS and SGD."""
    trust_coefficient: float = 1e-3
    """LARS: η, the trust coefficient of the layer-wise rate."""
    clip_lr: bool = False
    """LARS: clip the adapted learning rate to the global one (the CIFAR recipe)."""
    compiled_step: bool = option(False, resumable=True)
    """LARS: each step as one compiled graph (torch.compile; lr a device tensor, so one graph serves
    every step): a few fused kernels instead of a launch per tensor. For a GPU; same result to float
    tolerance. SGD and AdamW use PyTorch's fused kernels instead (on CUDA and CPUs)."""
    predictor_lr: float = 1.0
    """The predictor's learning rate as a multiple of the others' (1 in the paper's runs; 10 in its §5
    experiment: without a moving target, τ = 0, a predictor kept near its optimum still learns)."""
    warmup_epochs: float = option(10.0, flag="--warmup-epochs")
    """Linear warmup, then cosine decay to 0; capped at half of the run."""
    tau_base: float = option(0.996, flag="--tau-base")
    """Start of the target decay rate τ, which rises to 1 with a cosine schedule."""
    scale_lr: bool = True
    """Apply the linear scaling rule batch/256 (off for AdamW presets)."""

    def validate(self) -> None:
        self._one_of("optimizer")
        self._require("batch_size", self.batch_size >= 2, "at least 2 (BatchNorm needs a batch)")
        self._require("accumulate", self.accumulate >= 1, "at least 1")
        micro_ok = self.micro_batch == "auto" or (self.micro_batch.isdigit() and int(self.micro_batch) >= 2)
        self._require("micro_batch", micro_ok, "auto or a whole number of at least 2 (BatchNorm needs a batch)")
        self._require("base_lr", self.base_lr > 0, "positive")
        self._require("weight_decay", self.weight_decay >= 0, ">= 0")
        self._require("momentum", 0 <= self.momentum < 1, "in [0, 1)")
        self._require("trust_coefficient", self.trust_coefficient > 0, "positive")
        self._require(
            "compiled_step",
            not self.compiled_step or self.optimizer == "lars",
            "false with --optimizer sgd or adamw (PyTorch's fused kernels serve them)",
        )
        self._require("predictor_lr", self.predictor_lr > 0, "positive")
        self._require("warmup_epochs", self.warmup_epochs >= 0, ">= 0")
        self._require("tau_base", 0 <= self.tau_base <= 1, "in [0, 1]")


@dataclass
class RunConfig(_Section):
    SECTION: ClassVar[str] = "run"

    epochs: float = option(100, flag="--epochs", resumable=True)
    """Length of the run in epochs (ignored when time_budget is set)."""
    time_budget: float | None = option(None, flag="--time-budget", resumable=True)
    """Minutes of training: schedules are laid over the steps this allows, estimated from the first steps."""
    seed: int = option(0, flag="--seed")
    """Seed of the initialisation, the data order and every augmentation draw."""
    device: str = option("auto", flag="--device", resumable=True)
    """auto (cuda when available), cpu, cuda, cuda:N."""
    precision: str = option("auto", flag="--precision", resumable=True)
    """auto: bf16 autocast on CUDA; on a CPU with bf16 units (AMX, AVX-512 BF16) bf16 where a probe of the
    run's own passes finds it 1.1× faster than fp32 (said in the log and summary.json), measured once a
    run: a resume keeps its checkpoint's, a run under 200 steps or a 2-minute budget is fp32; fp32 on
    other CPUs. Or fp32, or bf16."""
    channels_last: bool = True
    """Images and convolutions in channels-last memory order (faster convolutions on GPUs and CPUs)."""
    compile: bool = option(False, flag="--compile")
    """torch.compile the model (CUDA: faster after a minute of compiling)."""
    compile_mode: str = option("default", resumable=True)
    """torch.compile's mode with --compile: default, reduce-overhead (CUDA graphs: fewer kernel launches
    from the host), max-autotune (also searches kernels; minutes of compiling) or max-autotune-no-cudagraphs."""
    deterministic: bool = option(False, flag="--deterministic")
    """Deterministic kernels: a resumed run then equals an uninterrupted one exactly (CPU)."""
    log_every: int = option(50, flag="--log-every", resumable=True)
    """Steps between metrics lines (loss, lr, τ, images/s, collapse diagnostics)."""
    knn_every: float = option(1.0, flag="--knn-every")
    """Epochs between kNN monitor evaluations when labels exist (0: off)."""
    knn_k: int = KNN_K
    """kNN's k: the neighbours that vote (the training monitor's, and byol eval knn's --k)."""
    knn_temperature: float = KNN_TEMPERATURE
    """kNN's temperature T: each neighbour's vote weighs exp(cosine similarity / T) (the monitor's, and byol
    eval knn's --temperature)."""
    knn_max_bank: int = 10000
    """At most this many training images form the monitor's kNN memory bank."""
    online_classifier: bool = True
    """Train a linear classifier on detached features to monitor progress (official BYOL does)."""
    checkpoint_every_minutes: float = option(10.0, flag="--checkpoint-every")
    """Also checkpoint inside an epoch this often (0: only at epoch ends)."""
    keep_checkpoints: int = 2
    """Checkpoints kept in checkpoints/; older ones are deleted."""
    max_skipped_steps: int = 10
    """Steps in a row whose loss or gradients are not finite that are skipped (no update) before the
    run stops with an error naming the last good checkpoint (0: stop at the first)."""

    def validate(self) -> None:
        self._require("epochs", self.epochs > 0, "positive")
        if self.time_budget is not None:
            self._require("time_budget", self.time_budget > 0, "positive minutes")
        self._require("seed", self.seed >= 0, ">= 0")
        self._one_of("precision")
        self._one_of("compile_mode")
        self._require("log_every", self.log_every >= 1, "at least 1")
        self._require("knn_every", self.knn_every >= 0, ">= 0 (0: off)")
        self._require("knn_k", self.knn_k >= 1, "at least 1")
        self._require("knn_temperature", self.knn_temperature > 0, "positive")
        self._require("knn_max_bank", self.knn_max_bank >= 1, "at least 1")
        self._require("checkpoint_every_minutes", self.checkpoint_every_minutes >= 0, ">= 0 (0: at epoch ends only)")
        self._require("keep_checkpoints", self.keep_checkpoints >= 1, "at least 1")
        self._require("max_skipped_steps", self.max_skipped_steps >= 0, ">= 0")
        device_ok = self.device in ("auto", "cpu", "cuda", "mps") or self.device.startswith("cuda:")
        self._require("device", device_ok, "auto, cpu, cuda or cuda:N")


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)
    methods: dict[str, Any] = field(default_factory=default_options)
    """Each method's own options by its name (``byol.config.registry.register_methods``): methods.simclr.temperature."""
    preset: str = ""

    def validate(self) -> Config:
        for section in (self.data, self.model, self.augment, self.optim, self.run):
            section.validate()
        for options in self.methods.values():  # each method checks the options of its own
            options.check(_requirer(options))
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

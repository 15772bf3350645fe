"""Numbers that several modules share, each defined once: the ground floor (it imports nothing of byol)."""

import os

VERSION = "0.1.0"
"""byol's version (pyproject.toml says the same): ``byol.__version__``, and recorded in every
checkpoint and encoder.json."""

SMALL_IMAGE_MAX_SIDE = 64
"""Images whose sides are at most this many pixels (CIFAR, STL-10 at 64 px) count as small: they are
decoded once into the uint8 cache and cropped on the device, ResNets get the 3×3 stride-1 stem without
max-pool, the presets turn blur off, and ``--preset auto`` picks the CIFAR recipe for them."""

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
"""Per-channel normalisation of the views and of every evaluation (RGB in [0, 1])."""

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
"""The files an image folder lists (``byol.data.folder.list_images``), lower case."""

PAPER_EVAL_CROP = 224 / 256
"""The paper's evaluation view keeps the central 224 px of an image resized to 256 px (§C.1)."""

KNN_K = 200
"""kNN evaluation's k, the neighbours that vote (Wu et al. 2018's choice, the SSL literature's usual one):
the default of the training monitor (``run.knn_k``), ``byol eval knn``, ``make demo`` and ``byol ablate``."""

KNN_TEMPERATURE = 0.1
"""kNN evaluation's temperature T: each neighbour's vote weighs exp(cosine similarity / T); the same four
users as ``KNN_K``."""

LINEAR_LRS = (0.4, 0.3, 0.2, 0.1, 0.05)
"""The paper's linear evaluation: the learning rates tried on a held-out part of train (§C.1)."""

LINEAR_EPOCHS = 80
"""The paper's linear evaluation: epochs of SGD per training (§C.1)."""

LINEAR_BATCH_SIZE = 1024
"""The paper's linear evaluation: batch size (§C.1)."""

FINETUNE_GRID = (("zeros", 0.1), ("zeros", 0.03), ("zeros", 0.01), ("probe", 0.01), ("probe", 0.003), ("probe", 0.001))
"""Fine-tuning on a fraction of the labels (``byol eval finetune``): the (head start, learning rate)
pairs tried, each encoder choosing its own on held-out labelled train images. A head started at zero
takes the usual learning rates; one started as the linear probe (linear probing then fine-tuning,
Kumar et al. 2022) is near its optimum and takes smaller ones (a pretrained encoder's choice; an
untrained one's probe is a poor start). docs/results/finetune-cpu has what each encoder chose."""

FINETUNE_BATCH_SIZE = 64
"""Fine-tuning's batch: small, so that 1% of CIFAR-10 (500 images) still makes 7 steps an epoch."""

FINETUNE_MIN_STEPS = 1000
"""Fine-tuning trains at least this many steps (more epochs when the labelled images are few): 30
epochs of 500 images at batch 256 were 30 steps, too few to fine-tune anything (docs/results/finetune-cpu)."""


def is_small(side: int) -> bool:
    """Whether an image (or a view) of this side counts as small (see ``SMALL_IMAGE_MAX_SIDE``)."""
    return side <= SMALL_IMAGE_MAX_SIDE


DEFAULT_SHUFFLE_BUFFER = 2000
"""Tar shards: the samples each reader holds to shuffle them (``data.shuffle_buffer``)."""

GROUP_CHANNELS = 8
"""GroupNorm + WS: at least this many channels per group by default (below it GroupNorm tends to InstanceNorm)."""

TIMM_PREFIX = "timm:"
"""``--backbone timm:<name>``: any model ``timm.create_model`` builds (the byol[timm] extra)."""


def is_timm(name: str) -> bool:
    """Whether a backbone name is a timm model's (``TIMM_PREFIX``)."""
    return name.startswith(TIMM_PREFIX)


MAX_DEFAULT_WORKERS = 8


def default_workers() -> int:
    """Data-loading workers by default: the CPU cores this process may use, at most ``MAX_DEFAULT_WORKERS``."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, MAX_DEFAULT_WORKERS))

"""The micro-batch: how many images one forward pass takes, so that any preset fits any machine.

``--batch-size`` keeps its meaning (the images one process contributes to a step, before
``--accumulate``); ``--micro-batch auto`` (the default) splits it into forward passes that fit in
memory and accumulates their gradients, so the optimiser, the lr scaling and the target update see
the same batch. BatchNorm statistics are then those of each micro-batch, as in the paper's own
emulation of large batches on fewer devices.

- CUDA: a probe step at the whole batch, halved on ``torch.cuda.OutOfMemoryError`` until it fits
  (as accelerate's ``find_executable_batch_size``).
- CPU, where running out of memory kills the process instead of raising: two small probe steps
  (augmentation included) measure the peak resident memory an image costs; the micro-batch is what
  fits in the memory available (the least of the free RAM, the cgroup's limit and the address-space
  limit) with a margin.

Probes leave no trace: weights, BatchNorm statistics, gradients and RNG states are restored.
"""

from __future__ import annotations

import copy
import logging
import math
import resource
from collections.abc import Callable
from pathlib import Path

import torch

from byol.data.batch import Batch
from byol.device import DevicePolicy
from byol.dist import DistInfo, from_rank0
from byol.errors import ByolError
from byol.train.engine import make_views

log = logging.getLogger(__name__)

MARGIN = 0.6  # of the available memory that micro-batches may take
MIB = 2**20


def passes_per_batch(batch: int, micro: int) -> int:
    """How many near-equal forward passes (differing by at most one image) a batch takes."""
    return math.ceil(batch / micro)


def _read_kib(path: str, field: str) -> int | None:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def available_bytes() -> int | None:
    """Memory this process may still take: the least of free RAM, the cgroup's room and RLIMIT_AS."""
    room = [_read_kib("/proc/meminfo", "MemAvailable")]
    for limit_file, usage_file in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"),
    ):
        try:
            limit, usage = Path(limit_file).read_text().strip(), Path(usage_file).read_text().strip()
            if limit.isdigit() and int(limit) < 2**60:
                room.append(int(limit) - int(usage))
        except OSError:
            continue
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    size = _read_kib("/proc/self/status", "VmSize")
    if soft != resource.RLIM_INFINITY and size is not None:
        room.append(soft - size)
    room = [r for r in room if r is not None]
    return max(0, min(room)) if room else None


def peak_growth(fn: Callable[[], None]) -> int | None:
    """Peak resident memory ``fn`` adds over the current one (Linux: VmHWM after resetting it)."""
    _release_freed_memory()
    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset the high-water mark to the current RSS
    except OSError:
        return None
    before = _read_kib("/proc/self/status", "VmRSS")
    fn()
    peak = _read_kib("/proc/self/status", "VmHWM")
    return None if before is None or peak is None else max(0, peak - before)


def _release_freed_memory() -> None:
    """Give memory that was freed back to the system (glibc keeps small freed blocks otherwise)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class MemoryProbe:
    """One forward and backward pass of ``micro`` random images through ``augment``'s views, leaving
    the model as it was.

    The method module runs itself (no DDP, no compiled wrapper) in eval mode, so that no process
    waits for another (SyncBatchNorm's collectives) and no BatchNorm statistic moves.
    """

    def __init__(self, method: torch.nn.Module, augment, size: int, policy: DevicePolicy):
        self.method, self.augment, self.size, self.policy = method, augment, size, policy
        self.device, self.memory_format = policy.device, policy.memory_format

    def make_views(self, images: torch.Tensor):
        batch = Batch.of_images(images)
        generator = torch.Generator(device=self.device).manual_seed(0)
        return make_views(self.augment, batch, self.device, generator, self.memory_format)

    def _random_views(self, micro: int):
        """The two views of ``micro`` random images (seeded: the same each call)."""
        g = torch.Generator().manual_seed(0)
        images = torch.randint(0, 256, (micro, 3, self.size, self.size), dtype=torch.uint8, generator=g)
        return self.make_views(images)

    def timed_pass(self, micro: int) -> Callable[[], None]:
        """A forward and backward pass of ``micro`` random images' views, to be timed (the precision
        probe): the views are made once, here, so each call is the model's passes alone. Eval mode moves
        no BatchNorm statistic and nothing steps, so the only trace, the gradients, is cleared."""
        view1, view2 = self._random_views(micro)

        def run() -> None:
            was_training = self.method.training
            try:
                self.method.eval()
                with self.policy.autocast():
                    loss = self.method(view1, view2).loss
                loss.backward()
            finally:
                for p in self.method.parameters():
                    p.grad = None
                self.method.train(was_training)

        return run

    def __call__(self, micro: int) -> None:
        saved = copy.deepcopy(self.method.state_dict())
        rng, was_training = torch.get_rng_state(), self.method.training
        try:
            self.method.eval()
            view1, view2 = self._random_views(micro)
            with self.policy.autocast():
                loss = self.method(view1, view2).loss
            loss.backward()
            del loss, view1, view2
        finally:
            for p in self.method.parameters():
                p.grad = None
            self.method.load_state_dict(saved)
            self.method.train(was_training)
            torch.set_rng_state(rng)
            if self.device.type == "cuda":
                torch.cuda.empty_cache()


def fit_micro_batch(batch: int, probe: MemoryProbe, device: torch.device) -> tuple[int, str]:
    """The largest micro-batch (at most ``batch``) that fits, and how it was chosen."""
    if device.type == "cuda":
        micro = batch
        while True:
            try:
                probe(micro)
                return micro, "probe steps on the GPU"
            except torch.cuda.OutOfMemoryError:
                if micro <= 2:
                    raise ByolError(
                        f"even a micro-batch of 2 images runs out of GPU memory "
                        f"({torch.cuda.get_device_properties(device).total_memory / MIB:,.0f} MiB); "
                        "choose a smaller --image-size or --backbone"
                    ) from None
                micro = max(2, micro // 2)
    small = min(batch, 8)
    room = available_bytes()
    try:
        first, second = peak_growth(lambda: probe(small)), peak_growth(lambda: probe(min(batch, 2 * small)))
    except (MemoryError, RuntimeError) as e:
        if not isinstance(e, MemoryError) and "alloc" not in str(e):
            raise
        free = f"{room / MIB:,.0f} MiB" if room is not None else "too little memory"
        raise ByolError(
            f"a probe step of {small} images ran out of memory ({free} free); choose a smaller --image-size or "
            "--backbone, or --preset cpu"
        ) from None
    if first is None or second is None or room is None or batch <= small:
        return batch, "the whole batch (memory not measurable here)" if batch > small else "the whole batch"
    # The growth between the two probes is the cost of the extra images; the second probe's whole
    # growth per image (which also carries the gradients' and the optimiser's fixed share) bounds it
    # from above: take the larger, to err on the safe side.
    per_image = max((second - first) / max(min(batch, 2 * small) - small, 1), second / min(batch, 2 * small), 1)
    fits = int(room * MARGIN / per_image)
    if fits < 2:
        raise ByolError(
            f"one image of this step takes about {per_image / MIB:,.1f} MiB and {room / MIB:,.0f} MiB are free: "
            "not even a micro-batch of 2 fits; choose a smaller --image-size or --backbone, or --preset cpu"
        )
    micro = min(batch, fits)
    return micro, f"{per_image / MIB:,.1f} MiB per image measured, {room / MIB:,.0f} MiB free"


def choose_passes(
    batch: int, micro_batch: int | str, info: DistInfo, probe: Callable[[], MemoryProbe] | None = None
) -> int:
    """Forward passes per batch: ``optim.micro_batch`` (``micro_batch``), or as many as fit (``auto``:
    ``fit_micro_batch`` with the probe ``probe()`` builds; every rank takes rank 0's, so that all split
    their batches alike)."""
    if micro_batch != "auto":
        micro, how = min(int(micro_batch), batch), "--micro-batch"
    else:
        built = probe()
        micro, how = fit_micro_batch(batch, built, built.device)
        micro = from_rank0(micro, info, built.device)
    passes = passes_per_batch(batch, micro)
    if passes > 1:
        log.warning(
            "micro-batch: the batch of %d images per process runs as %d forward passes of about %d (%s); their "
            "gradients are accumulated, and BatchNorm statistics are per pass, as in the paper's emulation of "
            "large batches",
            batch, passes, math.ceil(batch / passes), how,
        )  # fmt: skip
    else:
        log.info("micro-batch: the whole batch of %d in one forward pass (%s)", batch, how)
    return passes

"""Where a run executes: the device and its settings (precision, compiled augmentation, SyncBatchNorm,
seeds and determinism), the CPU cores, and process-group facts as values (rank, world size), with a
no-op path for one process.

``torchrun`` sets RANK / WORLD_SIZE / LOCAL_RANK; nothing here mutates arguments or patches print.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import platform
import shutil
from dataclasses import dataclass

import torch
import torch.distributed as dist

from byol.errors import ByolError

log = logging.getLogger(__name__)

MAX_DEFAULT_WORKERS = 8


def resolve_device(name: str) -> torch.device:
    """``auto`` (CUDA when available), ``cpu``, ``cuda`` or ``cuda:N``; a one-line error when CUDA is missing."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ByolError(f"--device {name!r} is not a device; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ByolError(f"--device {name}: CUDA is not available on this machine")
    return device


def default_workers() -> int:
    """Data-loading workers by default: the CPU cores this process may use, at most 8."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, MAX_DEFAULT_WORKERS))


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False  # init_distributed created the process group (and shuts it down)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def resolve_precision(setting: str, device: torch.device) -> str:
    """``run.precision``: auto is bf16 autocast on CUDA and on CPUs that multiply bf16 in hardware (Intel
    AMX tiles, or AVX-512 BF16 on Intel and AMD Zen 4 and later), fp32 on other CPUs, where bf16 matmuls are
    emulated and slower than fp32 (``precision_reason`` says which applied). A CPU's units are what it
    has, not what it gains: ``byol pretrain`` measures them on its own model before it trains
    (``byol.train.precision_probe``)."""
    if setting == "auto":
        return "bf16" if device.type == "cuda" or (device.type == "cpu" and cpu_bf16_units() is not None) else "fp32"
    return setting


def cpu_bf16_units() -> str | None:
    """The bf16 matrix hardware this CPU has, as PyTorch reports it: ``"AMX"``, ``"AVX-512 BF16"`` or None.

    ``benchmarks/precision.py`` times both precisions on the host it runs on (docs/results/precision-cpu/)."""
    for name, probe in (("AMX", "_is_amx_tile_supported"), ("AVX-512 BF16", "_is_avx512_bf16_supported")):
        check = getattr(torch.cpu, probe, None)
        if check is not None and check():
            return name
    return None


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), or what the platform says: for figures that name their host."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def precision_reason(setting: str, device: torch.device) -> str:
    """Why ``resolve_precision`` chose what it chose, in words for the run's log and ``summary.json``."""
    chosen = resolve_precision(setting, device)
    if setting != "auto":
        return f"{chosen}: run.precision={setting}"
    if device.type == "cuda":
        return "bf16: auto on CUDA"
    units = cpu_bf16_units()
    if units is not None:
        return f"bf16: auto, this CPU multiplies bf16 in hardware ({units})"
    return "fp32: auto, this CPU has no bf16 matrix units (neither AMX nor AVX-512 BF16): bf16 would be slower"


def autocast_for(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast of the forward passes (the loss is computed in fp32), or nothing for fp32."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def configure_device(device: torch.device, info: DistInfo, seed: int, deterministic: bool) -> torch.device:
    """This process's device (under torchrun on CUDA: its local rank's GPU), seeded, with the kernel
    settings a run asks for (``deterministic``; TF32 matmuls and cuDNN autotuning otherwise on CUDA)."""
    if device.type == "cuda" and info.distributed:
        device = torch.device("cuda", info.local_rank)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=device.type == "cuda")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = not deterministic
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return device


def augment_compile(setting: str, device: torch.device) -> bool:
    """``augment.compile``: auto compiles the augmentation on CUDA and where a C++ compiler is found."""
    if setting == "auto":
        return device.type == "cuda" or shutil.which("c++") is not None or shutil.which("g++") is not None
    return setting == "on"


def sync_bn(setting: str, device: torch.device) -> bool:
    """``model.sync_bn``: auto is SyncBatchNorm on CUDA; on is refused on a CPU."""
    if setting == "on" and device.type != "cuda":
        raise ByolError("model.sync_bn=on needs CUDA (SyncBatchNorm runs on GPUs only); use auto or off on CPU")
    return setting == "on" or (setting == "auto" and device.type == "cuda")


@dataclass(frozen=True)
class DevicePolicy:
    """How a run uses its device, resolved once from the config's settings (``resolve``): the precision
    of the forward passes, the memory order of images and convolutions, whether the augmentation is
    compiled and whether BatchNorm statistics are synchronised across processes."""

    device: torch.device
    precision: str = "fp32"  # fp32 or bf16
    precision_reason: str = ""  # why (``precision_reason``): the run's log and summary.json say it
    memory_format: torch.memory_format = torch.contiguous_format
    compile_augment: bool = False
    sync_bn: bool = False

    @classmethod
    def resolve(
        cls,
        device: torch.device,
        precision: str = "auto",
        channels_last: bool = True,
        augment_compile_setting: str = "auto",
        sync_bn_setting: str = "auto",
    ) -> DevicePolicy:
        """``run.precision``, ``run.channels_last``, ``augment.compile`` and ``model.sync_bn`` for ``device``."""
        return cls(
            device,
            resolve_precision(precision, device),
            precision_reason(precision, device),
            torch.channels_last if channels_last else torch.contiguous_format,
            augment_compile(augment_compile_setting, device),
            sync_bn(sync_bn_setting, device),  # on is refused on a CPU even for one process
        )

    def autocast(self) -> contextlib.AbstractContextManager:
        """The forward passes' autocast (``autocast_for``)."""
        return autocast_for(self.precision, self.device)


def elastic_restart_warning(env=os.environ) -> str | None:
    """Why a group that ``torchrun --max-restarts`` restarts may fail to reconnect, when it may.

    torchrun shares its rendezvous store with the process group, and a restarted group can read the
    addresses its dead predecessors left there (PyTorch issue 135712; seen here with torch 2.14 and
    gloo). ``TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1`` in torchrun's environment gives each attempt its own.
    """
    if int(env.get("TORCHELASTIC_MAX_RESTARTS", "0") or 0) > 0 and env.get("TORCH_DISABLE_SHARE_RDZV_TCP_STORE") != "1":
        return (
            "torchrun --max-restarts: set TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1 for torchrun, or a restarted "
            "group may fail to connect (PyTorch issue 135712)"
        )
    return None


def init_distributed(device_type: str) -> DistInfo:
    """Join the process group when launched by torchrun; one process otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    warning = elastic_restart_warning()
    if warning and os.environ.get("RANK", "0") == "0":
        log.warning(warning)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    owns = not dist.is_initialized()
    if owns:
        if device_type == "cuda":
            torch.cuda.set_device(local_rank)
        dist.init_process_group("nccl" if device_type == "cuda" else "gloo")
    return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank, owns)


def shutdown_distributed(info: DistInfo) -> None:
    """Leave the process group that ``init_distributed`` created (threads stopped before exit).

    On gloo the ranks meet first: a rank that closed its connections while another was still
    receiving the last collective's data made that one abort ("terminate called without an active
    exception", seen about one time in three on this CPU). The barrier waits 30 s at most, so a rank
    whose peer has died still exits.
    """
    if not (info.owns_group and dist.is_initialized()):
        return
    if dist.get_backend() == "gloo":
        with contextlib.suppress(Exception):
            dist.monitored_barrier(timeout=datetime.timedelta(seconds=30))
    dist.destroy_process_group()


def all_reduce_mean(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    if info.distributed:
        t = t.clone()
        dist.all_reduce(t)
        t /= info.world_size
    return t


def from_rank0(value: int, info: DistInfo, device: torch.device) -> int:
    """Rank 0's ``value`` on every rank: decisions taken from a clock (time budgets) must agree."""
    if not info.distributed:
        return value
    t = torch.tensor([value], dtype=torch.long, device=device)
    dist.broadcast(t, src=0)
    return int(t.item())


def barrier(info: DistInfo) -> None:
    if info.distributed:
        dist.barrier()

"""Where a run executes and how it uses it: the device, its CPU cores, and the settings resolved for
it once (``DevicePolicy``: precision, memory format, compiled augmentation, SyncBatchNorm), seeds and
determinism.
"""

from __future__ import annotations

import contextlib
import logging
import platform
import shutil
from dataclasses import dataclass
from typing import Any

import torch

from byol.dist import DistInfo
from byol.errors import ByolError

log = logging.getLogger(__name__)


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


def hardware(device: torch.device) -> dict[str, Any]:
    """What a run trained on, for its summary: the CPU's name, the vector unit PyTorch's kernels use
    (``AVX2``, ``AVX512``) and its bf16 matrix unit (or None), threads, and the GPU's name on CUDA.
    Hosts that mask their model name (``AMD EPYC``) are told apart by the last two."""
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    cpu = {"cpu": cpu_name(), "cpu_capability": torch.backends.cpu.get_cpu_capability(), "cpu_bf16": cpu_bf16_units()}
    return {**cpu, "threads": torch.get_num_threads(), **({"gpu": gpu} if gpu else {})}


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

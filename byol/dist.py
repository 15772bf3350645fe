"""Processes: torchrun's process-group facts as values (rank, world size), its start and end, and the
collectives a run uses, with a no-op path for one process. The device and how a run uses it are
``byol.device``'s.

``torchrun`` sets RANK / WORLD_SIZE / LOCAL_RANK; nothing here mutates arguments or patches print.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)


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

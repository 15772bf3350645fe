"""Fault injection for tests: ``BYOL_FAULT=POINT`` SIGKILLs this process when the code reaches POINT.

Points: ``step:N`` (inside step N, after the optimiser's update, before the target moves),
``knn:N`` (inside the kNN monitor at step N), ``mid-write:NAME`` and ``before-rename:NAME`` (while
``byol.files.atomic_write`` writes a file named NAME: its temporary file half written, or whole but
not renamed). Nothing happens unless the variable names the point: one dictionary look-up.
``BYOL_FAULT_RANK=R`` limits it to the process of rank R under torchrun. A fault fires in the first
attempt only (``TORCHELASTIC_RESTART_COUNT`` 0 or unset): a group that torchrun restarts can finish.
"""

from __future__ import annotations

import os
import signal

FAULT_ENV = "BYOL_FAULT"
FAULT_RANK_ENV = "BYOL_FAULT_RANK"


def armed(point: str) -> bool:
    if os.environ.get(FAULT_ENV) != point:
        return False
    rank = os.environ.get(FAULT_RANK_ENV)
    if rank is not None and os.environ.get("RANK", "0") != rank:
        return False
    return os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") == "0"


def reached(point: str) -> None:
    """Die here, as a power cut or the OOM killer would, when ``BYOL_FAULT`` names this point."""
    if armed(point):
        os.kill(os.getpid(), signal.SIGKILL)

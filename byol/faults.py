"""Fault injection for tests: ``BYOL_FAULT=POINT`` SIGKILLs this process when the code reaches POINT.

Points: ``step:N`` (inside step N, after its gradients, before the optimiser and target move),
``knn:N`` (inside the kNN monitor at step N), ``mid-write:NAME`` and ``before-rename:NAME`` (while
``byol.files.atomic_write`` writes a file named NAME: its temporary file half written, or whole but
not renamed). Nothing happens unless the variable names the point: one dictionary look-up.
"""

from __future__ import annotations

import os
import signal

FAULT_ENV = "BYOL_FAULT"


def armed(point: str) -> bool:
    return os.environ.get(FAULT_ENV) == point


def reached(point: str) -> None:
    """Die here, as a power cut or the OOM killer would, when ``BYOL_FAULT`` names this point."""
    if armed(point):
        os.kill(os.getpid(), signal.SIGKILL)

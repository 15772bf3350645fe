"""``python -m byol``: the ``byol`` command (so ``torchrun -m byol pretrain ...`` works)."""

import sys

from byol.cli.__main__ import main

sys.exit(main())

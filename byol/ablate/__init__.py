"""``byol ablate``: BYOL's ablations and collapse findings on your own data, beside the paper's figures.

Each variant is a set of config overrides on one base config (a preset and the user's options):
the baseline trains for ``--minutes`` and every other variant on as many images (the same epochs),
all with the same seed, each in its own run folder under ``DIR``. Each is then scored by kNN (with
``--test``: the test folder against the training folder; else, on labelled data, the kNN
monitor's held-out training images) and by its collapse diagnostics
(projection std × √d: ≈ 1 healthy, → 0 collapsed; effective rank of the representations). The
untrained encoder is scored too. ``DIR/ablations.json`` and ``DIR/ablations.md`` are written after
every variant, with the paper's figure for each and a line per claim saying whether it reproduced.
A finished variant is not run again; an interrupted one resumes from its checkpoint.

The paper's figures (Grill et al. 2020 unless said; ImageNet, ResNet-50, 300 epochs, linear top-1)
are not comparable in value with a few minutes of CPU training: what can carry over is the
direction of each finding, which the claims test.
"""

from byol.ablate.report import COLLAPSED, claims, plots, report_markdown
from byol.ablate.runner import AblationRunner, run_ablations
from byol.ablate.variants import SUITES, VARIANTS, Variant, suite_variants, variant_config

__all__ = [
    "COLLAPSED",
    "SUITES",
    "VARIANTS",
    "AblationRunner",
    "Variant",
    "claims",
    "plots",
    "report_markdown",
    "run_ablations",
    "suite_variants",
    "variant_config",
]

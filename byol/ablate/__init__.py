"""``byol ablate``: BYOL's ablations and collapse findings on your own data, beside the paper's figures.

Each variant is a set of config overrides on one base config (a preset and the user's options),
run for each of ``--seeds`` seeds in its own folder ``DIR/<variant>/seed<N>``. The first seed's
baseline trains for ``--minutes``; every other run on as many images (the same epochs). Each run is
scored by kNN (with ``--test``: the test folder against the training folder; else, on labelled
data, the kNN monitor's held-out training images), beside its *own* untrained encoder (same
architecture, norm and seed), and by its collapse diagnostics, centred (spread around the batch
mean, share of the top direction) and uncentred, from step 0 on. ``DIR/ablations.json`` and
``DIR/ablations.md`` are written after every run, with the paper's figure for each variant and a
verdict per claim by a rule fixed in advance (``claims.RULE``): reproduced, not reproduced, or
inconclusive. A finished run is not run again; an interrupted one resumes from its checkpoint.

The paper's figures (Grill et al. 2020 unless said; ImageNet, ResNet-50, 300 epochs, linear top-1)
are not comparable in value with a few minutes of CPU training: what can carry over is the
direction of each finding, which the claims test.
"""

from byol.ablate.claims import RULE, claims, verdict
from byol.ablate.report import COLLAPSED, plots, report_markdown
from byol.ablate.runner import AblationRunner, run_ablations
from byol.ablate.variants import SUITES, VARIANTS, Variant, scale_tau, suite_variants, variant_config

__all__ = [
    "COLLAPSED",
    "RULE",
    "SUITES",
    "VARIANTS",
    "AblationRunner",
    "Variant",
    "claims",
    "plots",
    "report_markdown",
    "run_ablations",
    "scale_tau",
    "suite_variants",
    "variant_config",
    "verdict",
]

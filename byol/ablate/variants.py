"""The ablation catalogue: each variant a set of config overrides with the paper's figure, and the suites."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from byol.config import Config
from byol.config.io import config_from_dict, merge
from byol.errors import ByolError
from byol.method.simclr import paper_views

GRILL = "Grill et al. 2020"
REPLY = "Richemond et al. 2020, table 1 (300 epochs; BatchNorm in the encoder)"


@dataclass(frozen=True)
class Variant:
    """One ablation: config overrides on the base config, and the paper's figure for it."""

    name: str
    label: str
    overrides: dict[str, Any] = field(default_factory=dict)
    paper: float | None = None  # the paper's top-1 (%), or None where it has none
    source: str = ""  # where the figure is from
    batch: int | None = None  # batch-size variants: the batch BatchNorm (and NT-Xent) sees
    method: str = "byol"
    # batch variants: as many images as the base batch, accumulated up to it ("images") or in real batches ("real"),
    # or as many "steps" as the base batch
    equal: str = "images"
    step_batch: int | None = None  # accumulated batch variants: the images of one step, where not the base batch
    probe: bool = False  # a collapse probe: read by its collapse diagnostics, may train shorter (--probe-epochs)


def _named(method: str) -> tuple[str, str]:
    """A method's variant-name prefix and its name in labels."""
    return ("", "BYOL") if method == "byol" else ("simclr_", "SimCLR")


def _batch_variants() -> list[Variant]:
    """Batches of 32 … 512 per forward pass. As the paper emulated small batches (§5.1), a batch
    below the base batch accumulates gradients up to it (one optimiser step and one target update
    per cycle): the steps and learning rate stay, BatchNorm (and SimCLR's negatives) see the small
    batch. Paper figures by batch size: table 16 of Grill et al. 2020, plotted in its fig. 3a (its SimCLR beside)."""
    byol_paper = {1024: 72.2, 512: 72.2, 256: 71.8, 128: 69.6, 64: 59.7}
    simclr_paper = {1024: 67.4, 512: 66.5, 256: 64.3, 128: 63.6, 64: 59.2}
    out = []
    for b in (32, 64, 128, 256, 512):
        for method, paper in (("byol", byol_paper), ("simclr", simclr_paper)):
            prefix, name = _named(method)
            out.append(
                Variant(
                    f"{prefix}batch_{b}",
                    f"{name}, batch {b} (accumulated up to the base batch where below it: BatchNorm sees {b})",
                    {"model": {"method": method}, "optim": {"batch_size": b}},
                    paper.get(b),
                    f"{GRILL}, fig. 3a (table 16)" if b in paper else "",
                    batch=b,
                    method=method,
                )  # fmt: skip
            )
    for b in (64, 1024):  # real batches at equal images: no accumulation, BatchNorm and NT-Xent see the batch
        for method, paper in (("byol", byol_paper), ("simclr", simclr_paper)):
            prefix, name = _named(method)
            out.append(Variant(f"{prefix}batch_{b}_real", f"{name}, a real batch of {b} (no accumulation)",
                               {"model": {"method": method}, "optim": {"batch_size": b, "micro_batch": str(b)}},
                               paper.get(b), f"{GRILL}, fig. 3a (table 16; accumulated there)" if b in paper else "",
                               batch=b, method=method, equal="real"))  # fmt: skip
    for method, paper in (("byol", byol_paper), ("simclr", simclr_paper)):  # the paper's emulation above 256
        prefix, name = _named(method)
        out.append(Variant(f"{prefix}batch_256_of_1024", f"{name}, batch 256 accumulated to 1024 (BatchNorm sees "
                           "256; the steps and lr of a real 1024)", {"model": {"method": method}}, paper[256],
                           f"{GRILL}, fig. 3a (table 16; 4096 emulated the same way)", batch=256, method=method,
                           step_batch=1024))  # fmt: skip
    for b in (64, 512):  # at equal steps: the real batch, no accumulation, epochs scaled by batch / base
        for method in ("byol", "simclr"):
            prefix, name = _named(method)
            out.append(Variant(f"{prefix}batch_{b}_steps", f"{name}, batch {b}, as many steps as the base batch",
                               {"model": {"method": method}, "optim": {"batch_size": b}}, batch=b, method=method,
                               equal="steps"))  # fmt: skip
    return out


# LARS as the heads-without-norm variant needs it (the authors' reply), so that one factor differs at a time.
LARS = {"optimizer": "lars", "base_lr": 1.0, "scale_lr": True, "weight_decay": 1e-5, "trust_coefficient": 0.02,
        "clip_lr": True}  # fmt: skip
# The length of the paper's ablations (table 5a): 300 ImageNet epochs at batch 4096.
CROP_ONLY = {"augment": {"color": False, "view1": {"blur_p": 0.0, "solarize_p": 0.0},
                         "view2": {"blur_p": 0.0, "solarize_p": 0.0}}}  # fmt: skip
PAPER_STEPS = round(300 * 1_281_167 / 4096)


def scale_tau(tau_base: float, steps: int, reference: int = PAPER_STEPS) -> float:
    """τ_base with the target's lag, 1 / (1 − τ_base) steps, the same share of a run of ``steps`` as
    of the paper's (``1 − τ_base ∝ 1 / steps``); 0 and 1 unchanged, 0 where the lag would be under a step."""
    if tau_base in (0.0, 1.0):
        return tau_base
    return max(0.0, 1.0 - (1.0 - tau_base) * reference / steps)


STL10 = "STL-10 replication, 10 epochs (Fetterman & Albrecht 2020); random encoder 28.8"
VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in [
        Variant("baseline", "BYOL (this preset)", {}, 72.5, f"{GRILL}, table 5a (τ_base 0.99)"),
        Variant(
            "no_predictor", "no predictor", {"model": {"use_predictor": False}}, 0.2, f"{GRILL}, table 5b", probe=True
        ),
        Variant(
            "tau_0", "τ = 0 (target = online)", {"optim": {"tau_base": 0.0}}, 0.3, f"{GRILL}, table 5a", probe=True
        ),
        Variant("tau_1", "τ = 1 (frozen random target)", {"optim": {"tau_base": 1.0}}, 18.8, f"{GRILL}, table 5a"),
        Variant("tau_0.9", "τ_base 0.9", {"optim": {"tau_base": 0.9}}, 68.4, f"{GRILL}, table 5a"),
        Variant("tau_0.99", "τ_base 0.99", {"optim": {"tau_base": 0.99}}, 72.5, f"{GRILL}, table 5a"),
        Variant("tau_0.999", "τ_base 0.999", {"optim": {"tau_base": 0.999}}, 69.8, f"{GRILL}, table 5a"),
        Variant(
            "heads_none_sgd",
            "heads without norm, SGD (no weight decay)",
            {
                "model": {"norm": "none"},
                "optim": {"optimizer": "sgd", "base_lr": 0.05, "scale_lr": True, "weight_decay": 0.0},
            },
            28.3,
            STL10,
        ),  # fmt: skip
        Variant(
            "lars", "BYOL under LARS + weight decay (the next two variants' reference)", {"optim": LARS}, 72.5, REPLY
        ),
        Variant(
            "heads_none_lars",
            "heads without norm, BatchNorm in the encoder, under LARS (only the heads' norm differs from lars)",
            {"model": {"norm": "none"}, "optim": LARS},
            72.1,
            REPLY,
        ),  # fmt: skip
        Variant(
            "tau_0_lars",
            "τ = 0 under LARS",
            {"optim": {**LARS, "tau_base": 0.0}},
            0.3,
            f"{GRILL}, table 5a",
            probe=True,
        ),
        Variant("heads_layernorm", "heads with LayerNorm", {"model": {"norm": "layernorm"}}, 29.4, STL10),
        Variant("heads_groupnorm", "heads with GroupNorm", {"model": {"norm": "groupnorm"}}),
        Variant(
            "encoder_gn_ws",
            "GroupNorm (≥ 8 channels a group) + weight standardisation, no batch statistics",
            {"model": {"encoder_norm": "groupnorm-ws", "norm": "groupnorm"}},
            73.9,
            "Richemond et al. 2020, 1000 epochs (BatchNorm: 74.3)",
        ),  # fmt: skip
        Variant(
            "encoder_gn_ws_mimic",
            "GroupNorm + WS started as BatchNorm starts (affines set on the first batch)",
            {"model": {"encoder_norm": "groupnorm-ws", "norm": "groupnorm", "encoder_init": "bn-mimic"}},
            73.9,
            "Richemond et al. 2020, 1000 epochs (BatchNorm: 74.3)",
        ),  # fmt: skip
        Variant(
            "simclr_paper",
            "SimCLR, its own recipe (symmetric views at colour strength 1, 128-d projector with BN)",
            {"model": {"method": "simclr"}, "methods": {"simclr": {"recipe": "paper"}}},
            67.9,
            f"{GRILL}, fig. 3a (table 16: their SimCLR, batch 4096)",
            method="simclr",
        ),  # fmt: skip
        Variant(
            "simclr",
            "NT-Xent in BYOL's pipeline (BYOL's projector and views; SimCLR's loss)",
            {"model": {"method": "simclr"}},
            67.9,
            f"{GRILL}, fig. 3a (table 16: their SimCLR, batch 4096)",
            method="simclr",
        ),  # fmt: skip
        Variant(
            "no_color", "BYOL, no colour jitter or grayscale", {"augment": {"color": False}}, 63.4, f"{GRILL}, fig. 3b"
        ),  # fmt: skip
        Variant(
            "simclr_no_color",
            "SimCLR, no colour jitter or grayscale",
            {"model": {"method": "simclr"}, "augment": {"color": False}},
            45.7,
            f"{GRILL}, fig. 3b",
            method="simclr",
        ),  # fmt: skip
        # Issue 44's missing claims (their rules in claims.py, committed before any of these ran).
        Variant(
            "heads_none",
            "heads without norm, under the baseline's own optimiser",
            {"model": {"norm": "none"}},
            28.3,
            STL10,
        ),  # fmt: skip
        Variant(
            "no_norm_lars",
            "no normalisation anywhere (no BatchNorm in the encoder or the heads), under LARS + weight decay",
            {"model": {"norm": "none", "encoder_norm": "none"}, "optim": LARS},
            0.1,
            "Richemond et al. 2020 (no normalisation, default initialisation)",
        ),  # fmt: skip
        Variant(
            "no_norm_lars_mimic",
            "no normalisation anywhere, under LARS + weight decay, from the data-dependent start: each of the "
            "encoder's BatchNorms a per-channel affine set on the first batch (heads without norm, as no_norm_lars)",
            {"model": {"norm": "none", "encoder_norm": "affine", "encoder_init": "bn-mimic"}, "optim": LARS},
            65.7,
            "Richemond et al. 2020 (no normalisation, data-dependent affine start; 300 epochs)",
        ),  # fmt: skip
        Variant(
            "no_norm_lars_mimic_all",
            "no normalisation anywhere, under LARS + weight decay, from the data-dependent start in every layer: "
            "each BatchNorm of the encoder and the heads a per-channel affine set on the first batch",
            {"model": {"norm": "affine", "encoder_norm": "affine", "encoder_init": "bn-mimic"}, "optim": LARS},
            65.7,
            "Richemond et al. 2020 (no normalisation, data-dependent affine start; 300 epochs)",
        ),  # fmt: skip
        Variant(
            "crop_only",
            "BYOL, random crops and flips only (no colour, blur or solarisation)",
            CROP_ONLY,
            59.4,
            f"{GRILL}, fig. 3b",
        ),  # fmt: skip
        Variant(
            "tau_0_predictor_lr_lars",
            "τ = 0 (no moving target) with the predictor's lr × 10, under LARS + weight decay",
            {"optim": {**LARS, "tau_base": 0.0, "predictor_lr": 10.0}},
            66.5,
            f"{GRILL}, §5 (300 epochs)",
        ),  # fmt: skip
        Variant(
            "projector_output_bn",
            "BatchNorm on the projector's output (online and target), as SimCLR's projector has",
            {"model": {"projector_output_norm": True}},
            None,
            'issue 44 ("this seemingly small detail turns out to matter"; no figure)',
        ),  # fmt: skip
        Variant(
            "simclr_crop_only",
            "SimCLR, random crops and flips only",
            {"model": {"method": "simclr"}, **CROP_ONLY},
            40.3,
            f"{GRILL}, fig. 3b",
            method="simclr",
        ),  # fmt: skip
        *_batch_variants(),
    ]
}
TAU_ORDER = ("tau_0.9", "tau_0.99", "tau_0.999")  # τ_base's order (fig. 3 / table 5a)
HEADS = ("heads_none_sgd", "lars", "heads_none_lars")  # heads without norm, under SGD and LARS
SUITES = {
    "paper": [
        "baseline",
        "no_predictor",
        "tau_0",
        "tau_1",
        *TAU_ORDER,
        *HEADS,
        "tau_0_lars",
        "heads_layernorm",
        "heads_groupnorm",
        "encoder_gn_ws",
        "encoder_gn_ws_mimic",
        "simclr",
        "simclr_paper",
        "no_color",
        "simclr_no_color",
        "batch_32",
        "batch_64",
        "batch_128",
        "batch_512",
        "simclr_batch_32",
        "simclr_batch_64",
        "simclr_batch_128",
        "simclr_batch_512",
        "batch_64_steps",
        "simclr_batch_64_steps",
        "batch_256_of_1024",
        "simclr_batch_256_of_1024",
        "batch_1024_real",
        "simclr_batch_1024_real",
        "batch_64_real",
        "simclr_batch_64_real",
    ],  # fmt: skip
    # The variants the claims read (byol ablate --suite claims --seeds 3).
    "claims": [
        "baseline",
        "no_predictor",
        "tau_0",
        "tau_0_lars",
        "tau_1",
        *TAU_ORDER,
        *HEADS,
        "heads_layernorm",
        "encoder_gn_ws",
        "encoder_gn_ws_mimic",
        "simclr",
        "no_color",
        "simclr_no_color",
        "batch_1024_real",
        "simclr_batch_1024_real",
        "batch_256_of_1024",
        "simclr_batch_256_of_1024",
        "batch_64",
        "simclr_batch_64",
    ],
    # The batch claims' variants: the paper's emulation (accumulated; BatchNorm sees the smaller batch at the
    # steps and lr of the larger) on both sides of 256, and real batches at equal images beside.
    "batch": [
        "simclr",
        "batch_1024_real",
        "simclr_batch_1024_real",
        "batch_256_of_1024",
        "simclr_batch_256_of_1024",
        "batch_64",
        "simclr_batch_64",
        "batch_64_real",
        "simclr_batch_64_real",
    ],  # fmt: skip
    "collapse": ["baseline", "no_predictor", "tau_0", "tau_1"],
    # Issue 44's missing claims: each beside the baseline of its optimiser and method.
    "missing": ["baseline", "heads_none", "lars", "no_norm_lars", "simclr", "crop_only", "simclr_crop_only"],
    # Issue 44: the first sitting's variants (2026-11-30), whose run folders were not kept, run again into one
    # folder beside the baseline and SimCLR, so the claims page reads run folders only.
    "first_sitting": [
        "simclr",
        "no_predictor",
        "tau_0",
        "tau_0_lars",
        "tau_1",
        *HEADS,
        "heads_layernorm",
        "encoder_gn_ws",
        "encoder_gn_ws_mimic",
        "no_color",
        "simclr_no_color",
        "batch_32",  # no claim reads these two any more; the page's table shows them
        "simclr_batch_32",
    ],
    # Issue 44: the claims whose reading depends on length, at 30–40 epochs (tau_0.9 is the baseline's config,
    # under the name the τ order claim reads: the runner gives it the baseline's runs, not trained twice).
    "long": ["tau_0.9", "tau_0.99", "tau_0.999", "tau_1", "encoder_gn_ws", "heads_none"],
    # Issue 44: no normalisation anywhere from the reply's data-dependent start, beside the default start.
    "init": ["lars", "no_norm_lars", "no_norm_lars_mimic", "no_norm_lars_mimic_all"],
    # Issue 44's two details: the target's role (τ = 0 alone and with a faster predictor), BatchNorm on z.
    "details": ["baseline", "lars", "tau_0_lars", "tau_0_predictor_lr_lars", "projector_output_bn"],
}


def suite_variants(suite: str) -> list[Variant]:
    """The variants of a named suite, or of a comma list of variant names."""
    names = SUITES.get(suite, [n.strip() for n in suite.split(",") if n.strip()])
    unknown = [n for n in names if n not in VARIANTS]
    if unknown or not names:
        raise ByolError(
            f"--suite {suite!r}: unknown variant {', '.join(unknown) or '(none given)'}; "
            f"suites: {', '.join(SUITES)}; variants: {', '.join(VARIANTS)}"
        )
    return [VARIANTS[n] for n in names]


def variant_config(
    base: Config,
    variant: Variant,
    minutes: float | None = None,
    epochs: float | None = None,
    tau_steps: int | None = None,
) -> Config:
    """The base config with the variant's overrides, trained for ``minutes`` (the baseline) or
    ``epochs`` (every other variant: as many images as the baseline saw). Batch variants below the
    base batch accumulate gradients back up to it; those at equal steps instead train the real batch
    for epochs scaled by batch / base batch. With ``tau_steps`` (the run's steps), a variant's own
    τ_base is scaled to that length (``scale_tau``)."""
    values = merge(base.to_dict(), variant.overrides)
    base_batch = base.optim.batch_size * base.optim.accumulate
    if variant.equal == "steps" and epochs is not None:
        epochs = epochs * variant.batch / base_batch
    length = {"time_budget": minutes} if minutes is not None else {"time_budget": None, "epochs": epochs}
    values = merge(values, {"run": length})
    if variant.batch is not None:
        step = variant.step_batch or base_batch
        accumulate = max(1, step // variant.batch) if variant.equal == "images" else 1
        pinned = variant.equal == "real" or variant.step_batch  # one pass per batch: BatchNorm sees it
        micro = str(variant.batch) if pinned else "auto"
        values = merge(values, {"optim": {"accumulate": accumulate, "micro_batch": micro}})
    values = paper_views(values)  # the simclr_paper variant: SimCLR's own views
    own_tau = (variant.overrides.get("optim") or {}).get("tau_base")
    if tau_steps is not None and own_tau is not None:
        values = merge(values, {"optim": {"tau_base": scale_tau(own_tau, tau_steps)}})
    return config_from_dict(values).validate()

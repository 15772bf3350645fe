"""The paper's findings checked on an ablation's figures, over seeds, by a rule stated before the run.

The rule (``RULE``): an accuracy claim "A beats B" is **reproduced** when A − B has the claimed sign
in every seed (paired: the same seed's runs) and the mean difference is above 2 points; **not
reproduced** when it has the opposite sign in every seed with the same margin; **inconclusive**
otherwise. A claim with fewer seeds run than the suite planned is inconclusive at most (a suite
still running). A collapse claim is reproduced when the variant is collapsed by the centred diagnostics
(``byol.train.diagnostics.is_collapsed``) in every seed and the baseline in none; not reproduced when
it is collapsed in no seed; inconclusive otherwise. A claim that needs a variant not run is "not run".
Each variant is compared with its *own* untrained encoder (same architecture and norm, same seed).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from byol.train.diagnostics import COLLAPSE_RATIO, SPREAD_COLLAPSED, TOP_SHARE_COLLAPSED, is_collapsed

MARGIN = 0.02  # the mean paired difference a claim needs (2 points of top-1)
RULE = (
    f"reproduced: the claimed sign in every seed and a mean paired difference above {100 * MARGIN:g} points "
    f"(a collapse: spread < {SPREAD_COLLAPSED} or top-direction share > {TOP_SHARE_COLLAPSED} in every seed, the "
    "baseline in none); not reproduced: the opposite sign in every seed with the same margin (a collapse: in no "
    "seed); inconclusive otherwise, and while fewer seeds have run than the suite planned"
)
VERDICTS = ("reproduced", "not reproduced", "inconclusive", "not run")

Row = dict[str, Any]


def seed_rows(results: dict[str, Any], name: str) -> dict[str, Row]:
    """The runs of a variant by seed (results written before seeds existed: their one seed)."""
    v = results.get("variants", {}).get(name)
    if v is None:
        return {}
    return v["seeds"] if "seeds" in v else {str(results.get("setup", {}).get("seed", 0)): v}


def untrained_top1(results: dict[str, Any], row: Row) -> float | None:
    """kNN of the run's own untrained encoder; results written before that: the base config's."""
    if row.get("untrained_top1") is not None:
        return row["untrained_top1"]
    return (results.get("untrained") or {}).get("top1")


def collapsed(row: Row) -> bool | None:
    """By the centred diagnostics; rows written before them: the uncentred ratio."""
    if row.get("spread") is not None and row.get("top_share") is not None:
        return is_collapsed(row)
    return None if row.get("collapse_std") is None else row["collapse_std"] < COLLAPSE_RATIO


def per_seed(results: dict[str, Any], names: tuple[str, ...], fn: Callable[..., float | None]) -> list[float]:
    """``fn(row_a, row_b, …)`` in every seed all ``names`` ran (values that are None dropped)."""
    rows = [seed_rows(results, n) for n in names]
    common = set(rows[0]).intersection(*rows[1:]) if rows else set()
    values = [fn(*(r[s] for r in rows)) for s in sorted(common, key=str)]
    return [v for v in values if v is not None]


def planned_seeds(results: dict[str, Any]) -> int:
    """How many seeds the suite was asked for (``setup.seeds``)."""
    return len(results.get("setup", {}).get("seeds") or [0])


def verdict(diffs: list[float], margin: float = MARGIN, planned: int = 1) -> str:
    """By ``RULE``; fewer seeds than ``planned`` (a suite still running) is at most inconclusive."""
    if not diffs:
        return "not run"
    if len(diffs) < planned:
        return "inconclusive"
    mean = sum(diffs) / len(diffs)
    if all(d > 0 for d in diffs) and mean > margin:
        return "reproduced"
    if all(d < 0 for d in diffs) and mean < -margin:
        return "not reproduced"
    return "inconclusive"


def flags_verdict(flags: list[bool], planned: int = 1) -> str:
    if not flags:
        return "not run"
    if len(flags) < planned:
        return "inconclusive"
    return "reproduced" if all(flags) else "not reproduced" if not any(flags) else "inconclusive"


def both(*verdicts: str) -> str:
    """A claim made of parts: reproduced when every part is, not reproduced when any is not."""
    if "not run" in verdicts:
        return "not run"
    if all(v == "reproduced" for v in verdicts):
        return "reproduced"
    return "not reproduced" if "not reproduced" in verdicts else "inconclusive"


def spread(values: list[float], scale: float = 100.0) -> str:
    """``mean ± std`` over seeds (std 0 for one seed), in points by default; "—" without values."""
    if not values:
        return "—"
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0
    form = ".1f" if scale == 100 else ".3g"
    return f"{scale * mean:{form}} ± {scale * std:{form}} (n={len(values)})"


def knn(row: Row) -> float | None:
    return row.get("knn_top1")


def gain(results: dict[str, Any]) -> Callable[[Row], float | None]:
    """A run's kNN over its own untrained encoder's."""

    def fn(row: Row) -> float | None:
        un = untrained_top1(results, row)
        return None if knn(row) is None or un is None else knn(row) - un

    return fn


def diff(a: Row, b: Row) -> float | None:
    return None if knn(a) is None or knn(b) is None else knn(a) - knn(b)


def claims(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The paper's findings, each with a verdict by ``RULE`` and the figures it rests on."""
    out: list[dict[str, Any]] = []
    n = planned_seeds(results)

    def claim(text: str, v: str, figures: str) -> None:
        out.append({"claim": text, "verdict": v, "reproduced": {"reproduced": True, "not reproduced": False}.get(v),
                    "figures": figures})  # fmt: skip

    _collapse_claims(results, claim)
    g = gain(results)
    base_t1, t1_gain = per_seed(results, ("baseline", "tau_1"), diff), per_seed(results, ("tau_1",), g)
    claim("τ = 1 (a frozen random target) learns a little: below BYOL, above its untrained encoder",
          both(verdict(base_t1, planned=n), verdict(t1_gain, planned=n)),
          f"baseline − τ=1: {spread(base_t1)}; τ=1 − its untrained: {spread(t1_gain)}")  # fmt: skip
    lo, hi = per_seed(results, ("tau_0.99", "tau_0.9"), diff), per_seed(results, ("tau_0.99", "tau_0.999"), diff)
    claim("τ_base 0.99 beats 0.9 and 0.999", both(verdict(lo, planned=n), verdict(hi, planned=n)),
          f"0.99 − 0.9: {spread(lo)}; 0.99 − 0.999: {spread(hi)}")  # fmt: skip
    for name, text in (("heads_none_sgd", "Heads without BatchNorm collapse (plain SGD)"),
                       ("heads_layernorm", "LayerNorm in the heads does not save it")):  # fmt: skip
        flags = per_seed(results, (name,), lambda r: bool(collapsed(r)) or (g(r) is not None and g(r) < MARGIN))
        claim(
            text,
            flags_verdict(flags, planned=n),
            f"collapsed or within {100 * MARGIN:g} points of its untrained encoder "
            f"in {sum(flags)} of {len(flags)} seeds; gain over untrained {spread(per_seed(results, (name,), g))}",
        )
    ref = "lars" if seed_rows(results, "lars") else "baseline"
    worse, learns = per_seed(results, (ref, "heads_none_lars"), diff), per_seed(results, ("heads_none_lars",), g)
    claim(
        f"Heads without norm under LARS + weight decay still learn, worse (than {ref})",
        both(verdict(worse, planned=n), verdict(learns, planned=n)),
        f"{ref} − it: {spread(worse)}; it − its untrained: {spread(learns)}",
    )
    for name in ("encoder_gn_ws", "encoder_gn_ws_mimic"):
        if name == "encoder_gn_ws" or seed_rows(results, name):
            gn = per_seed(results, (name,), g)
            claim(f"GroupNorm + weight standardisation ({name}) learns: above its untrained encoder",
                  verdict(gn, planned=n), f"gain over its own untrained: {spread(gn)}")  # fmt: skip
    for change, statement in (
        ("batch_32", "BYOL is more robust to small batches than SimCLR (base batch → 32)"),
        ("no_color", "Removing colour hurts BYOL less than SimCLR"),
    ):
        # Per seed: what the change costs SimCLR minus what it costs BYOL (positive: BYOL loses less).
        losses = per_seed(results, ("simclr", f"simclr_{change}", "baseline", change), lambda s, sc, b, bc: None
                          if None in (diff(s, sc), diff(b, bc)) else diff(s, sc) - diff(b, bc))  # fmt: skip
        claim(statement, verdict(losses, planned=n), f"SimCLR's loss − BYOL's: {spread(losses)}")
    return out


def _collapse_claims(results: dict[str, Any], claim: Callable[[str, str, str], None]) -> None:
    base, n = per_seed(results, ("baseline",), collapsed), planned_seeds(results)
    for name, text in (("no_predictor", "Without the predictor BYOL collapses"),
                       ("tau_0", "With τ = 0 BYOL collapses"),
                       ("tau_0_lars", "With τ = 0 BYOL collapses, under LARS")):  # fmt: skip
        if name == "tau_0_lars" and not seed_rows(results, name):
            continue
        flags = per_seed(results, (name,), collapsed)
        v = flags_verdict(flags, planned=n)
        if v == "reproduced" and any(base):
            v = "inconclusive"  # the baseline collapsed too: nothing told apart
        sp = per_seed(results, (name,), lambda r: r.get("spread"))
        top = per_seed(results, (name,), lambda r: r.get("top_share"))
        claim(text, v, f"collapsed in {sum(flags)} of {len(flags)} seeds (baseline: {sum(base)} of {len(base)}); "
              f"spread {spread(sp, 1)}, top-direction share {spread(top, 1)}")  # fmt: skip

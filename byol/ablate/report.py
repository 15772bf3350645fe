"""The claims checked on an ablation's figures, its Markdown report and its plots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from byol.ablate.variants import GRILL
from byol.report import save_figure
from byol.train.monitor import COLLAPSE_RATIO

COLLAPSED = COLLAPSE_RATIO  # projection std × √d below this: collapsed (the run's own warning uses it too)


def _knn(results: dict[str, Any], name: str) -> float | None:
    if name == "untrained":
        return (results.get("untrained") or {}).get("top1")
    return results.get("variants", {}).get(name, {}).get("knn_top1")


def _collapsed(results: dict[str, Any], name: str) -> bool | None:
    std = results.get("variants", {}).get(name, {}).get("collapse_std")
    return None if std is None else std < COLLAPSED


def claims(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The paper's findings, each checked on this run's figures: reproduced True / False, or None
    when a variant it needs is missing (not run, or no labels for accuracy)."""
    k = lambda name: _knn(results, name)  # noqa: E731
    out = []

    def claim(text: str, ok, why: str) -> None:
        out.append({"claim": text, "reproduced": ok, "figures": why})

    def fmt(v):
        return "—" if v is None else f"{100 * v:.1f}"

    collapses = (("no_predictor", "Without the predictor BYOL collapses"), ("tau_0", "With τ = 0 BYOL collapses"))
    for name, text in collapses:
        c, base = _collapsed(results, name), _collapsed(results, "baseline")
        ok = None if c is None or base is None else bool(c and not base)
        std = results.get("variants", {}).get(name, {}).get("collapse_std")
        bstd = results.get("variants", {}).get("baseline", {}).get("collapse_std")
        claim(text, ok, f"collapse std × √d {std if std is None else round(std, 3)} vs baseline "
                        f"{bstd if bstd is None else round(bstd, 3)} (collapsed below {COLLAPSED})")  # fmt: skip
    t1, base, un = k("tau_1"), k("baseline"), k("untrained")
    ok = None if None in (t1, base, un) else bool(base > t1 >= un)
    claim("τ = 1 (a frozen random target) learns a little: below BYOL, at or above the untrained encoder", ok,
          f"kNN: baseline {fmt(base)}, τ = 1 {fmt(t1)}, untrained {fmt(un)}")  # fmt: skip
    taus = {n: k(n) for n in ("tau_0.9", "tau_0.99", "tau_0.999")}
    ok = None if None in taus.values() else bool(taus["tau_0.99"] >= max(taus["tau_0.9"], taus["tau_0.999"]))
    claim("τ_base 0.99 beats 0.9 and 0.999", ok, ", ".join(f"{n[4:]}: {fmt(v)}" for n, v in taus.items()))
    margin = 0.02  # within 2 points of the untrained encoder: learned nothing worth the name
    for name, text in (("heads_none_sgd", "Heads without BatchNorm collapse (plain SGD)"),
                       ("heads_layernorm", "LayerNorm in the heads does not save it")):  # fmt: skip
        acc, collapsed = k(name), _collapsed(results, name)
        # Collapsed outputs, or an encoder no better than an untrained one.
        ok = None if None in (acc, un, base) else bool(acc < base and (collapsed or acc - un < margin))
        std = results.get("variants", {}).get(name, {}).get("collapse_std")
        std_text = "—" if std is None else f"{std:.3f}"
        claim(text, ok, f"kNN {fmt(acc)} vs untrained {fmt(un)}, baseline {fmt(base)}; collapse std × √d {std_text}")
    lars = k("heads_none_lars")
    ok = None if None in (lars, un, base) else bool(un + margin <= lars < base)
    claim("Heads without norm under LARS + weight decay still learn, worse", ok,
          f"kNN {fmt(lars)} vs untrained {fmt(un)}, baseline {fmt(base)}")  # fmt: skip
    gn = k("encoder_gn_ws")
    ok = None if None in (gn, un, base) else bool(gn - un >= margin)
    claim("GroupNorm + weight standardisation (no batch statistics) learns", ok,
          f"kNN {fmt(gn)} vs untrained {fmt(un)}, baseline {fmt(base)}")  # fmt: skip
    drops = {}
    for method, prefix, full in (("BYOL", "", "baseline"), ("SimCLR", "simclr_", "simclr")):
        small, ref = k(f"{prefix}batch_32"), k(full)
        drops[method] = None if None in (small, ref) else ref - small
    ok = None if None in drops.values() else bool(drops["BYOL"] < drops["SimCLR"])
    claim("BYOL is more robust to small batches than SimCLR (base batch → 32)", ok,
          ", ".join(f"{m} loses {fmt(d)} points" for m, d in drops.items()))  # fmt: skip
    color = {}
    for method, full, ablated in (("BYOL", "baseline", "no_color"), ("SimCLR", "simclr", "simclr_no_color")):
        a, b = k(full), k(ablated)
        color[method] = None if None in (a, b) else a - b
    ok = None if None in color.values() else bool(color["BYOL"] < color["SimCLR"])
    claim("Removing colour hurts BYOL less than SimCLR", ok,
          ", ".join(f"{m} loses {fmt(d)} points" for m, d in color.items()))  # fmt: skip
    return out


def report_markdown(results: dict[str, Any]) -> str:
    setup, variants = results.get("setup", {}), results.get("variants", {})
    un = results.get("untrained")
    lines = [
        "# BYOL ablations",
        "",
        f"Data `{setup.get('data')}`" + (f", kNN on `{setup['test']}`" if setup.get("test") else "")
        + f"; preset `{setup.get('preset')}`; {_budget(setup)}; seed {setup.get('seed')}, "
        f"base batch {setup.get('base_batch')}, baseline τ_base {setup.get('tau_base')}.",
        "",
        "Paper figures: ImageNet, ResNet-50, 300 epochs, linear top-1 (%) unless the source says otherwise; ours: "
        "weighted kNN top-1 (%) after minutes of training. Compare directions, not values.",
        "",
    ]  # fmt: skip
    if not any(v.get("knn_top1") is not None for v in variants.values()):
        lines += ["No labels (or no `--test`): collapse diagnostics only, no accuracy.", ""]
    lines += [
        "| variant | kNN top-1 | paper | source | collapse std × √d | rank of projections | rank of representations "
        "| loss | steps | images seen |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    if un:
        lines.append(f"| untrained encoder | {100 * un['top1']:.1f} | 1.4 | {GRILL}, table 5a | | | | | 0 | 0 |")
    for name, v in variants.items():
        knn = "—" if v.get("knn_top1") is None else f"{100 * v['knn_top1']:.1f}"
        paper = "—" if v.get("paper") is None else f"{v['paper']}"
        std = "—" if v.get("collapse_std") is None else f"{v['collapse_std']:.3f}"
        rank = "—" if v.get("effective_rank") is None else f"{v['effective_rank']:.1f}"
        prank = "—" if v.get("projection_rank") is None else f"{v['projection_rank']:.1f}"
        loss = "—" if v.get("loss") is None else f"{v['loss']:.3f}"
        lines.append(
            f"| {name}: {v['label']} | {knn} | {paper} | {v.get('source', '')} | {std} | {prank} | {rank} | {loss} | "
            f"{v['steps']} | {v['images_seen']:,} |"
        )
    lines += ["", "## Claims", "", "| claim | reproduced here | figures |", "|---|---|---|"]
    for c in results.get("claims", []):
        word = {True: "yes", False: "**no**", None: "not run"}[c["reproduced"]]
        lines.append(f"| {c['claim']} | {word} | {c['figures']} |")
    lines += ["", "Plots: `collapse.png` (collapse std over steps), `accuracy.png`, `batch.png`.", ""]
    return "\n".join(lines)


def _budget(setup: dict[str, Any]) -> str:
    epochs = setup.get("epochs") or 0
    if setup.get("minutes") is None:
        return f"every variant {epochs:.2f} epochs"
    return f"the baseline trained {setup['minutes']} minutes ({epochs:.2f} epochs), every variant as many epochs"


def plots(results: dict[str, Any], out: Path) -> None:
    """collapse.png, accuracy.png and batch.png beside the report (what the results allow)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    variants = results.get("variants", {})
    if not variants:
        return
    fig, ax = plt.subplots(figsize=(9, 5))
    for i, (name, v) in enumerate(variants.items()):
        if v.get("std_curve"):
            steps, std = zip(*v["std_curve"])
            style = "--" if v.get("method") == "simclr" else "-"  # SimCLR dashed, BYOL solid
            ax.plot(steps, std, style, label=name, lw=1.2, color=plt.cm.tab20(i % 20))
    ax.axhline(COLLAPSED, color="k", ls=":", lw=1)
    ax.set(xlabel="step", ylabel="projection std × √d (1: spread, 0: collapsed)", title="Collapse diagnostics")
    ax.legend(fontsize=6, ncol=3)
    save_figure(fig, out / "collapse.png", dpi=110)
    scored = {n: v["knn_top1"] for n, v in variants.items() if v.get("knn_top1") is not None}
    if scored:
        fig, ax = plt.subplots(figsize=(8, 4.5))
        ax.barh(list(scored), [100 * s for s in scored.values()], color="tab:blue")
        un = (results.get("untrained") or {}).get("top1")
        if un is not None:
            ax.axvline(100 * un, color="tab:red", ls="--", label="untrained encoder")
            ax.legend(fontsize=7)
        ax.invert_yaxis()
        ax.set(xlabel="kNN top-1 (%)", title="Accuracy per variant")
        ax.tick_params(axis="y", labelsize=7)
        save_figure(fig, out / "accuracy.png", dpi=110)
    base_batch = results.get("setup", {}).get("base_batch")
    curves = {}
    for method, prefix, full in (("BYOL", "", "baseline"), ("SimCLR", "simclr_", "simclr")):
        pts = {v["batch"]: v["knn_top1"] for n, v in variants.items() if n.startswith(f"{prefix}batch_")
               and v.get("knn_top1") is not None and v.get("method") == method.lower()}  # fmt: skip
        if full in variants and variants[full].get("knn_top1") is not None and base_batch:
            pts.setdefault(base_batch, variants[full]["knn_top1"])
        if pts:
            curves[method] = sorted(pts.items())
    if curves:
        fig, ax = plt.subplots(figsize=(6, 4))
        for method, pts in curves.items():
            ax.plot([b for b, _ in pts], [100 * a for _, a in pts], "o-", label=method)
        ax.set_xscale("log", base=2)
        ax.set(xlabel="batch size (BatchNorm / negatives)", ylabel="kNN top-1 (%)", title="Batch size")
        ax.legend()
        save_figure(fig, out / "batch.png", dpi=110)

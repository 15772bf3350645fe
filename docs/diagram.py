"""Draws BYOL's two networks as a small PNG for the documentation's home page.

    python docs/diagram.py docs/results/pictures/networks.png
"""

import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

ONLINE, TARGET, LOSS = "#cfe3f7", "#f3dfc3", "#e3e3e3"


def box(ax, x, y, text, color, w=1.5, h=0.6):
    ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.04", fc=color, ec="#444"))
    ax.text(x, y, text, ha="center", va="center", fontsize=9)


def arrow(ax, a, b, style="-|>", ls="-", color="#333"):
    ax.add_patch(FancyArrowPatch(a, b, arrowstyle=style, mutation_scale=12, lw=1.2, ls=ls, color=color))


def draw(path: str) -> None:
    fig, ax = plt.subplots(figsize=(9, 3.4))
    ax.set(xlim=(-0.2, 11.4), ylim=(-0.3, 3.5))
    ax.axis("off")
    box(ax, 0.6, 1.6, "image x", "white", w=1.1)
    rows = ((2.7, "view v (t)", "online", ONLINE), (0.5, "view v' (t')", "target", TARGET))
    for y, view, name, color in rows:
        box(ax, 2.3, y, view, "white", w=1.4)
        arrow(ax, (1.15, 1.6), (1.6, y))
        box(ax, 4.1, y, f"encoder f\n({name})", color)
        box(ax, 5.9, y, f"projector g\n({name})", color)
        arrow(ax, (3.0, y), (3.35, y))
        arrow(ax, (4.85, y), (5.15, y))
    box(ax, 7.7, 2.7, "predictor q", ONLINE)
    arrow(ax, (6.65, 2.7), (6.95, 2.7))
    box(ax, 10.0, 1.6, "‖q̄(z) − z̄'‖²\n= 2 − 2·cos", LOSS, w=1.9, h=0.8)
    arrow(ax, (8.45, 2.7), (9.05, 1.85))
    arrow(ax, (6.65, 0.5), (9.05, 1.35))
    ax.text(7.0, 0.5, "stop-gradient", fontsize=8, color="#a0522d", rotation=10)
    arrow(ax, (4.1, 2.35), (4.1, 0.85), style="-|>", ls="--", color="#a0522d")
    arrow(ax, (5.9, 2.35), (5.9, 0.85), style="-|>", ls="--", color="#a0522d")
    ax.text(1.4, 1.6, "EMA (dashed), no gradient:\ntarget ← τ·target + (1−τ)·online\nτ: 0.996 → 1, cosine",
            fontsize=7.5, color="#a0522d", va="center")  # fmt: skip
    ax.text(10.0, 1.0, "both view orders, summed", ha="center", fontsize=8)
    ax.text(0.6, 3.25, "BYOL: the online network predicts the target's projection of the other view",
            fontsize=9, ha="left")  # fmt: skip
    fig.savefig(path, dpi=100, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)


if __name__ == "__main__":
    draw(sys.argv[1] if len(sys.argv) > 1 else "networks.png")

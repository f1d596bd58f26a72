"""PNG figures (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from registry.records.lineage import nodes_and_edges
from registry.util.extras import require


def heatmap(matrix: np.ndarray, labels: list[str], path: str | Path, title: str = "") -> None:
    require("plots", "matplotlib", what="drawing a plot (--plot)")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(labels)
    fig, ax = plt.subplots(figsize=(3 + 0.9 * n, 1.8 + 0.8 * n))
    im = ax.imshow(matrix, cmap="RdBu_r", vmin=-1, vmax=1)
    ax.set_xticks(range(n), labels, rotation=45, ha="right")
    ax.set_yticks(range(n), labels)
    for i in range(n):
        for j in range(n):
            shade = "white" if abs(matrix[i, j]) > 0.6 else "black"
            ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=8, color=shade)
    fig.colorbar(im, ax=ax, label="cosine")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


MARGIN = "DPO margin vs base (held-out)"


def sweep_plot(result, path: str | Path) -> None:
    import matplotlib.pyplot as plt

    fig = sweep_figure(result)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def sweep_figure(result):
    """One curve per metric over η (one varied vector), or an annotated heatmap per metric (two).

    The subtitle names the terms held at their recipe weights, so a plot read alone says
    what else was in the model.
    """
    require("plots", "matplotlib", what="drawing a plot (--plot)")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [f"eta[{v}]" for v in result.varied]
    others = [m for m in result.metrics if m in getattr(result, "own_scale", ())]  # answer words, …
    margins = [m for m in result.metrics if m not in others]
    if len(keys) == 1:
        panels = ([margins] if margins else []) + [[m] for m in others]
        fig, axes = plt.subplots(1, len(panels), figsize=(6 + 4 * (len(panels) - 1), 4), squeeze=False)
        xs = [r[keys[0]] for r in result.rows]
        for ax, group in zip(axes[0], panels, strict=True):
            for m in group:
                ax.plot(xs, [r[m] for r in result.rows], marker="o", label=m)
            ax.set_xlabel(f"η ({result.varied[0]})")
            if group is margins:
                ax.axhline(0, color="grey", lw=0.5)
                ax.set_ylabel(MARGIN)
                ax.legend()
            else:
                ax.set_ylabel(group[0])
    else:
        xs = sorted({r[keys[0]] for r in result.rows})
        ys = sorted({r[keys[1]] for r in result.rows})
        fig, axes = plt.subplots(1, len(result.metrics), figsize=(5 * len(result.metrics), 4), squeeze=False)
        for ax, m in zip(axes[0], result.metrics, strict=True):
            grid = np.full((len(ys), len(xs)), np.nan)
            for r in result.rows:
                grid[ys.index(r[keys[1]]), xs.index(r[keys[0]])] = r[m]
            im = ax.imshow(grid, origin="lower", cmap="viridis", aspect="auto")
            middle = np.nanmean(grid) if np.isfinite(grid).any() else 0.0
            for i, j in np.ndindex(grid.shape):
                if np.isfinite(grid[i, j]):
                    shade = "black" if grid[i, j] > middle else "white"
                    ax.text(j, i, f"{grid[i, j]:+.3g}", ha="center", va="center", fontsize=8, color=shade)
            ax.set_xticks(range(len(xs)), [f"{x:g}" for x in xs])
            ax.set_yticks(range(len(ys)), [f"{y:g}" for y in ys])
            ax.set_xlabel(f"η ({result.varied[0]})")
            ax.set_ylabel(f"η ({result.varied[1]})")
            ax.set_title(m)
            fig.colorbar(im, ax=ax, label=MARGIN if m in margins else m)
    fixed = ", ".join(f"{n}={w:g}" for n, w in getattr(result, "fixed", {}).items())
    fig.suptitle(f"sweep of {result.recipe}" + (f" (fixed: {fixed})" if fixed else ""), fontsize=10)
    fig.tight_layout()
    return fig


def lineage_plot(tree: dict, path: str | Path) -> None:
    """The lineage DAG in columns: base → runs → vectors → recipes → outputs."""
    require("plots", "matplotlib", what="drawing a plot (--plot)")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    nodes, edges = nodes_and_edges(tree)
    columns = ["base", "run", "vector", "recipe", "output"]
    colours = dict(zip(columns, ["#d9d9d9", "#c6dbef", "#c7e9c0", "#fdd0a2", "#dadaeb"], strict=True))
    place: dict[str, tuple[float, float]] = {}
    tall = max(sum(1 for n in nodes if n[1] == c) for c in columns)
    for x, c in enumerate(columns):
        col = [n for n in nodes if n[1] == c]
        for i, (nid, _c, _label) in enumerate(col):
            place[nid] = (
                x * 3.0,
                (tall - 1) / 2 - i + (len(col) - 1) / 2 - (tall - 1) / 2 + (tall - len(col)) / 2,
            )
    fig, ax = plt.subplots(figsize=(15, 1.2 + 1.1 * tall))
    for a, b in edges:
        (x0, y0), (x1, y1) = place[a], place[b]
        ax.annotate("", (x1 - 1.1, y1), (x0 + 1.1, y0), arrowprops={"arrowstyle": "->", "color": "grey"})
    for nid, c, label in nodes:
        x, y = place[nid]
        ax.text(x, y, label, ha="center", va="center", fontsize=7,
                bbox={"boxstyle": "round", "fc": colours[c], "ec": "grey"})  # fmt: skip
    for x, c in enumerate(columns):
        ax.text(x * 3.0, tall / 2 + 0.3, c, ha="center", fontsize=9, weight="bold")
    ax.set_xlim(-1.5, 13.5)
    ax.set_ylim(-tall / 2 - 0.3, tall / 2 + 0.6)
    ax.axis("off")
    ax.set_title(f"lineage of {tree['ref']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def tune_plot(record: dict, path: str | Path) -> None:
    """The evaluations of a tune search, the target and the chosen η."""
    require("plots", "matplotlib", what="drawing a plot (--plot)")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = sorted((e["eta"], e["value"]) for e in record["evaluations"])
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", color="#3182bd", label="evaluations")
    for i, e in enumerate(record["evaluations"]):
        ax.annotate(str(i + 1), (e["eta"], e["value"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.axhline(record["target"], color="grey", ls="--", lw=0.8, label=f"target {record['target']:g}")
    ax.axvline(record["eta"], color="#e6550d", lw=0.8, label=f"chosen η = {record['eta']:g}")
    ax.set_xlabel(f"η ({record['vary']})")
    ax.set_ylabel(record["metric"])
    ax.legend(fontsize=8)
    ax.set_title(f"tune {record['from']} → {record['recipe']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)

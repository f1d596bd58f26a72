"""PNG figures (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def heatmap(matrix: np.ndarray, labels: list[str], path: str | Path, title: str = "") -> None:
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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [f"eta[{v}]" for v in result.varied]
    if len(keys) == 1:
        fig, ax = plt.subplots(figsize=(6, 4))
        xs = [r[keys[0]] for r in result.rows]
        for m in result.metrics:
            ax.plot(xs, [r[m] for r in result.rows], marker="o", label=m)
        ax.axhline(0, color="grey", lw=0.5)
        ax.set_xlabel(f"η ({result.varied[0]})")
        ax.set_ylabel(MARGIN)
        ax.legend()
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
            fig.colorbar(im, ax=ax, label=MARGIN)
    fixed = ", ".join(f"{n}={w:g}" for n, w in getattr(result, "fixed", {}).items())
    fig.suptitle(f"sweep of {result.recipe}" + (f" (fixed: {fixed})" if fixed else ""), fontsize=10)
    fig.tight_layout()
    return fig

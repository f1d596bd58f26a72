"""Time and peak RSS against model size, for registry and mergekit, from bench_materialize results.

python benchmarks/plot_results.py results/A.json results/B.json … --out results/scaling.png
    [--table]   # also print the Markdown table docs/benchmarks.md quotes
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

SERIES = [  # (key in the result file, label, style)
    ("materialize", "registry materialize (linear)", "o-"),
    ("materialize_ties", "registry materialize (ties)", "s-"),
    ("materialize_dare", "registry materialize (dare)", "^-"),
    ("import", "registry vector import", "v-"),
    ("gram_n4", "registry interference, N=4", "d-"),
    ("verify_n4", "registry verify (4 vectors + base)", "x-"),
    ("mergekit_bf16", "mergekit task_arithmetic, bf16", "o--"),
    ("mergekit_fp32", "mergekit task_arithmetic, fp32", "s--"),
]


def load(paths: list[Path]) -> list[dict]:
    runs = [json.loads(p.read_text()) | {"file": p.name} for p in paths]
    return sorted(runs, key=lambda r: r["params"])


def plot(runs: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(13, 5.2))
    x = [r["params"] / 1e9 for r in runs]
    for key, label, style in SERIES:
        pts = [(xi, r[key]) for xi, r in zip(x, runs, strict=True) if key in r]
        if not pts:
            continue
        xs = [p[0] for p in pts]
        ax_t.plot(xs, [p[1]["wall_s"] for p in pts], style, label=label)
        ax_m.plot(xs, [p[1]["peak_rss_mb"] / 1000 for p in pts], style, label=label)
    ax_t.set(xlabel="parameters (billions)", ylabel="wall time, whole process (s)", title="Time")
    ax_m.set(xlabel="parameters (billions)", ylabel="peak RSS (GB)", title="Peak memory")
    for ax in (ax_t, ax_m):
        ax.grid(alpha=0.3)
        ax.set_xlim(left=0)
        ax.set_ylim(bottom=0)
    ax_m.legend(fontsize=8, loc="upper left")
    machine = runs[0].get("machine", "")
    fig.suptitle(f"registry vs mergekit — {machine}, {runs[0].get('date', '')} (bf16 Llama fixtures)")
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def fmt(r: dict, key: str) -> str:
    if key not in r:
        return "—"
    # the values exactly as the result file has them
    return f"{r[key]['wall_s']} s ({r[key]['cpu_s']} CPU-s) / {r[key]['peak_rss_mb']} MB"


def table(runs: list[dict]) -> str:
    head = "| | " + " | ".join(f"{r['params']:,} params (`{r['file']}`)" for r in runs) + " |"
    lines = [head, "|---" * (len(runs) + 1) + "|"]
    for key, label, _ in SERIES:
        lines.append(f"| {label} | " + " | ".join(fmt(r, key) for r in runs) + " |")
    for kind in ("bf16", "fp32"):
        k = f"speedup_vs_mergekit_{kind}"
        lines.append(
            f"| speed-up vs mergekit {kind} (median; per round) | "
            + " | ".join(
                f"**{r[k]}×** ({', '.join(map(str, r[f'speedup_per_round_vs_mergekit_{kind}']))})"
                if k in r
                else "—"
                for r in runs
            )
            + " |"
        )
    lines.append(
        "| import ÷ materialize, wall (the two medians) | "
        + " | ".join(f"{r['import']['wall_s']} / {r['materialize']['wall_s']}" for r in runs)
        + " |"
    )
    lines.append(
        "| stored bytes/param | " + " | ".join(str(r["stored_bytes_per_param"]) for r in runs) + " |"
    )
    lines.append(
        "| load average before / after | "
        + " | ".join(f"{r['load_before']} / {r['load_after']}" for r in runs)
        + " |"
    )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results", nargs="+", type=Path)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--table", action="store_true")
    args = p.parse_args()
    runs = load(args.results)
    plot(runs, args.out)
    if args.table:
        print(table(runs))


if __name__ == "__main__":
    main()

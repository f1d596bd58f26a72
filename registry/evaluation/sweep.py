"""Sweeps: the paper's controllability experiment, scored in memory (no folders written).

For every point of the η grid, the recipe's weights for the varied vectors are replaced,
the merged model is built in memory and every evaluator scores it. Evaluators are the
plugins that trained the recipe's vectors (their held-out pairs, DPO margin vs the base).
"""

from __future__ import annotations

import csv
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from registry.errors import RegistryError
from registry.evaluation.plots import sweep_plot
from registry.evaluation.scoring import completion_logprobs, load_model, merged_state
from registry.plugins.loader import load
from registry.records.bases import get_base
from registry.records.recipes import get_recipe
from registry.records.vectors import get_vector
from registry.util.extras import require
from registry.util.numbers import finite32
from registry.util.refs import Ref

if TYPE_CHECKING:
    from registry.core import Core


@dataclass
class SweepResult:
    recipe: str
    varied: list[str]
    metrics: list[str]
    rows: list[dict[str, float]] = field(default_factory=list)
    fixed: dict[str, float] = field(default_factory=dict)  # the other terms' weights, unchanged

    def write(self, folder: Path) -> dict[str, str]:
        folder.mkdir(parents=True, exist_ok=True)
        columns = [*(f"eta[{v}]" for v in self.varied), *self.metrics]
        with open(folder / "sweep.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(columns)
            for r in self.rows:
                w.writerow([r[c] for c in columns])
        (folder / "sweep.json").write_text(json.dumps(self.as_dict(), indent=2) + "\n")

        sweep_plot(self, folder / "sweep.png")
        return {k: str(folder / f"sweep.{k}") for k in ("csv", "json", "png")}

    def as_dict(self) -> dict[str, Any]:
        return {
            "recipe": self.recipe,
            "varied": self.varied,
            "fixed": self.fixed,
            "metrics": self.metrics,
            "rows": self.rows,
        }


def evaluators_for(core: Core, refs: list[str], base: str, extra: list[str]) -> dict[str, tuple[str, dict]]:
    """metric name -> (plugin, plugin options), from the vectors' lineage and --evaluator."""
    found: dict[str, tuple[str, dict]] = {}
    for ref in refs:
        run = get_vector(core, ref, base).run
        if run is not None and run.plugin:
            found.setdefault(f"{run.plugin}_margin", (run.plugin, run.params.get("plugin_options", {})))
    for plugin in extra:
        found.setdefault(f"{plugin}_margin", (plugin, {}))
    return found


def run_sweep(
    core: Core,
    recipe: str,
    vary: list[str],
    etas: list[float],
    evaluators: list[str] | None = None,
    log=None,
) -> SweepResult:
    require("train", "torch", "transformers", what="sweep")
    require("plots", "matplotlib", what="sweep (it draws sweep.png)")
    from transformers import AutoTokenizer

    bad = [e for e in etas if not finite32(e)]  # a weight is applied in float32: 1e300 is inf there
    if bad:
        raise RegistryError(
            f"η must be finite numbers (as float32: |η| ≤ 3.4e38), not {', '.join(map(str, bad))}"
        )
    r = get_recipe(core, recipe)
    base = r.base.name
    terms = {t.vector.name: (t.vector.ref, t.weight) for t in r.terms}
    varied = []
    for v in vary:
        name = Ref.parse(v, "vector reference").name
        if name not in terms:
            raise RegistryError(
                f"vector {v} is not a term of recipe {r.ref} (its terms: {', '.join(terms)}); "
                "vary one of them, or add a recipe version that has it"
            )
        varied.append(name)
    if len(set(varied)) != len(varied):
        raise RegistryError("each vector may be varied once")
    evals = evaluators_for(core, [ref for ref, _ in terms.values()], base, evaluators or [])
    if not evals:
        raise RegistryError(
            "no evaluator: none of the recipe's vectors was trained by a plugin; pass --evaluator PLUGIN"
        )
    b = get_base(core, base)
    tok = AutoTokenizer.from_pretrained(b.path)
    model = load_model(b.path)
    heldout, base_lp = {}, {}
    for metric, (plugin, opts) in evals.items():
        pairs = load(plugin).heldout(**opts)
        if not pairs:
            raise RegistryError(f"plugin {plugin} has no held-out pairs to evaluate on")
        heldout[metric] = pairs
        base_lp[metric] = [completion_logprobs(model, tok, pairs, w) for w in ("chosen", "rejected")]
    fixed = {name: w for name, (_ref, w) in terms.items() if name not in varied}
    result = SweepResult(r.ref, varied, sorted(evals), fixed=fixed)
    for point in itertools.product(etas, repeat=len(varied)):
        weights = dict(zip(varied, point, strict=True))
        merged = [(ref, weights.get(name, w)) for name, (ref, w) in terms.items()]
        model.load_state_dict(merged_state(core, base, merged, r.method, r.params), strict=False)
        row = {f"eta[{v}]": e for v, e in weights.items()}
        for metric, pairs in heldout.items():
            pc, pr = (completion_logprobs(model, tok, pairs, w) for w in ("chosen", "rejected"))
            bc, br = base_lp[metric]
            row[metric] = sum((a - b) - (c - d) for a, b, c, d in zip(pc, bc, pr, br, strict=True)) / len(
                pairs
            )
        result.rows.append(row)
        if log:
            log(" ".join(f"{k}={v:+.4g}" for k, v in row.items()))
    return result

"""Sweeps: the paper's controllability experiment, scored in memory (no folders written).

For every point of the η grid, the recipe's weights for the varied vectors are replaced,
the merged model is built in memory and every evaluator scores it. Evaluators are the
plugins that trained the recipe's vectors (their held-out pairs, DPO margin vs the base,
scored through the chat template on a chat base; answer_length for a plugin without
held-out pairs, as those defined by instructions are), and those named by --evaluator: a
plugin (`verbose` or `verbose_margin`) or an installed evaluator (`answer_length`, `mattr`,
`ppl_drift`, …: generated answers and perplexity, see registry_plugins.evaluators).
"""

from __future__ import annotations

import csv
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from registry.errors import RegistryError
from registry.evaluation.behaviour import evaluate
from registry.evaluation.plots import sweep_plot
from registry.evaluation.retention import corpus_path, load_corpus
from registry.evaluation.scoring import completion_logprobs, load_model, merged_state
from registry.plugins.loader import EVALUATORS, load, names
from registry.plugins.spec import Evaluator, PreferencePair
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
    # evaluator metrics (answer words, mattr, …): plotted on their own axes, not the margins'
    own_scale: list[str] = field(default_factory=list)

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


# what scores a vector whose plugin has no held-out pairs (one defined by instructions: the
# base writes its pairs): the plugin's own `evaluators` if it names some, else these
DEFAULT_EVALUATORS = ("answer_length",)


@dataclass
class Evaluators:
    """What scores each merge: plugins' held-out DPO margins and installed evaluators."""

    margins: dict[str, list[PreferencePair]] = field(default_factory=dict)  # metric -> held-out pairs
    evaluators: dict[str, Evaluator] = field(default_factory=dict)  # metric -> evaluator

    def metrics(self) -> list[str]:
        return sorted([*self.margins, *self.evaluators])

    def add_evaluator(self, name: str) -> None:
        self.evaluators.setdefault(name, EVALUATORS.load(name))


def resolve(name: str) -> tuple[str, str]:
    """('evaluator', name) for an installed evaluator, ('margin', plugin) for a plugin named
    as `PLUGIN` or `PLUGIN_margin`."""
    if name in EVALUATORS.names():
        return "evaluator", name
    plugins = names()
    plugin = name.removesuffix("_margin") if name.removesuffix("_margin") in plugins else name
    if plugin in plugins:
        return "margin", plugin
    raise RegistryError(
        f"unknown evaluator {name!r}: neither an installed evaluator ({', '.join(EVALUATORS.names()) or 'none'}) "
        f"nor a preference plugin ({', '.join(plugins) or 'none'})"
    )


def evaluators_for(core: Core, refs: list[str], base: str, extra: list[str]) -> Evaluators:
    """The vectors' training plugins (from their lineage), and each --evaluator name.

    A lineage plugin with no held-out pairs is scored by its declared `evaluators` (or
    answer_length) instead; a plugin named with --evaluator must have held-out pairs."""
    found = Evaluators()
    for ref in refs:
        run = get_vector(core, ref, base).run
        if run is None or not run.plugin or f"{run.plugin}_margin" in found.margins:
            continue
        plugin = load(run.plugin)
        pairs = plugin.heldout(**run.params.get("plugin_options", {}))
        if pairs:
            found.margins[f"{run.plugin}_margin"] = pairs
        else:
            for name in getattr(plugin, "evaluators", None) or DEFAULT_EVALUATORS:
                found.add_evaluator(name)
    for name in extra:
        kind, what = resolve(name)
        if kind == "evaluator":
            found.add_evaluator(what)
        elif f"{what}_margin" not in found.margins:
            pairs = load(what).heldout()
            if not pairs:
                raise RegistryError(
                    f"plugin {what} has no held-out pairs to evaluate on; "
                    "measure its answers instead, e.g. --evaluator answer_length"
                )
            found.margins[f"{what}_margin"] = pairs
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
    if not evals.metrics():
        raise RegistryError(
            "no evaluator: none of the recipe's vectors was trained by a plugin; "
            "pass --evaluator PLUGIN or an evaluator such as answer_length"
        )
    b = get_base(core, base)
    tok = AutoTokenizer.from_pretrained(b.path)
    model = load_model(b.path)
    heldout = evals.margins
    base_lp = {
        metric: [completion_logprobs(model, tok, pairs, w) for w in ("chosen", "rejected")]
        for metric, pairs in heldout.items()
    }
    # metrics relative to the base (perplexity drift) need an unmerged copy beside the merges
    needs_base = any(e.needs_base for e in evals.evaluators.values())
    base_model = load_model(b.path) if needs_base else None
    corpus = load_corpus(corpus_path(core)) if needs_base else None
    fixed = {name: w for name, (_ref, w) in terms.items() if name not in varied}
    result = SweepResult(r.ref, varied, evals.metrics(), fixed=fixed, own_scale=sorted(evals.evaluators))
    for point in itertools.product(etas, repeat=len(varied)):
        weights = dict(zip(varied, point, strict=True))
        merged = [(ref, weights.get(name, w)) for name, (ref, w) in terms.items()]
        model.load_state_dict(merged_state(core, base, merged, r.method, r.params), strict=False)
        row: dict[str, float] = {f"eta[{v}]": e for v, e in weights.items()}
        for metric, pairs in heldout.items():
            pc, pr = (completion_logprobs(model, tok, pairs, w) for w in ("chosen", "rejected"))
            bc, br = base_lp[metric]
            row[metric] = sum((a - b) - (c - d) for a, b, c, d in zip(pc, bc, pr, br, strict=True)) / len(
                pairs
            )
        scores = evaluate(list(evals.evaluators.values()), model, tok, base_model, corpus)
        row.update({metric: scores[ev.name] for metric, ev in evals.evaluators.items()})
        result.rows.append(row)
        if log:
            log(" ".join(f"{k}={v:+.4g}" for k, v in row.items()))
    return result

"""Automatic η: find the weight of one recipe term that brings a held-out metric to a target.

A bracketing search (Illinois false position, falling back to bisection) on in-memory merges,
assuming the metric moves monotonically with η inside the range. The result is a new recipe
version; the search (metric, target, every evaluation, chosen η) is recorded with it and
copied into its outputs' card and lock.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from registry.errors import RegistryError, TargetUnreachable
from registry.evaluation.behaviour import evaluate
from registry.evaluation.retention import corpus_path, load_corpus
from registry.evaluation.scoring import completion_logprobs, load_model, merged_state
from registry.plugins.loader import EVALUATORS, load, names
from registry.records.bases import get_base
from registry.records.recipes import add_recipe, get_recipe
from registry.records.vectors import get_vector
from registry.util.extras import require
from registry.util.numbers import finite32
from registry.util.refs import Ref

if TYPE_CHECKING:
    from registry.core import Core


def parse_target(text: str) -> tuple[str, float]:
    name, sep, value = text.partition("=")
    try:
        if not sep or not name.strip():
            raise ValueError
        if not finite32(float(value)):
            raise ValueError
        return name.strip(), float(value)
    except ValueError:
        raise RegistryError(
            f"invalid target {text!r}: expected METRIC=VALUE with a finite VALUE, e.g. verbose_margin=5"
        ) from None


def parse_range(text: str) -> tuple[float, float]:
    lo, sep, hi = text.partition(":")
    try:
        low, high = float(lo), float(hi)
    except ValueError:
        raise RegistryError(f"invalid range {text!r}: expected LO:HI, e.g. 0:2") from None
    if not sep or not low < high:
        raise RegistryError(f"invalid range {text!r}: expected LO:HI with LO < HI")
    if not (finite32(low) and finite32(high) and finite32(high - low)):  # η is applied in float32
        raise RegistryError(f"invalid range {text!r}: LO and HI must be finite as float32 (|η| ≤ 3.4e38)")
    return low, high


def metric_function(core: Core, r, metric: str) -> Callable[[list[tuple[str, float]]], float]:
    """terms → value: a plugin's held-out DPO margin (`PLUGIN_margin`, through the chat template
    on a chat base) or an installed evaluator (e.g. answer_length: greedy chat answers)."""
    from transformers import AutoTokenizer

    base = get_base(core, r.base.name)  # this host's folder of the base
    tok = AutoTokenizer.from_pretrained(base.path)
    model = load_model(base.path)
    if metric.endswith("_margin") and metric[: -len("_margin")] in names():
        plugin = metric[: -len("_margin")]

        runs = [get_vector(core, t.vector.ref, base.name).run for t in r.terms]  # its training options
        opts = next((x.params.get("plugin_options", {}) for x in runs if x and x.plugin == plugin), {})
        pairs = load(plugin).heldout(**opts)
        if not pairs:
            raise RegistryError(
                f"plugin {plugin} has no held-out pairs to evaluate on; "
                "target a measure of its answers instead, e.g. answer_length=120"
            )
        bc, br = (completion_logprobs(model, tok, pairs, w) for w in ("chosen", "rejected"))

        def score(m) -> float:
            pc, pr = (completion_logprobs(m, tok, pairs, w) for w in ("chosen", "rejected"))
            return sum((a - b) - (c - d) for a, b, c, d in zip(pc, bc, pr, br, strict=True)) / len(pairs)

    elif metric in EVALUATORS.names():
        ev = EVALUATORS.load(metric)
        # a metric relative to the base (ppl_drift) needs an unmerged copy beside the merges
        base_model = load_model(base.path) if ev.needs_base else None
        corpus = load_corpus(corpus_path(core)) if ev.needs_base else None

        def score(m) -> float:
            return evaluate([ev], m, tok, base_model, corpus)[ev.name]

    else:
        known = [f"{p}_margin" for p in names()] + EVALUATORS.names()
        raise RegistryError(f"unknown metric {metric!r} (known: {', '.join(known)})")

    def value(terms: list[tuple[str, float]]) -> float:
        model.load_state_dict(merged_state(core, base.name, terms, r.method, r.params), strict=False)
        return score(model)

    return value


def search(
    f: Callable[[float], float], target: float, lo: float, hi: float, tol: float, max_evals: int
) -> tuple[float, float, list[dict[str, float]]]:
    """(η, f(η), evaluations): Illinois false position on a bracket, η rounded to 6 decimals."""
    evals: list[dict[str, float]] = []

    def g(x: float) -> float:
        x = round(x, 6)
        y = f(x)
        evals.append({"eta": x, "value": y})
        return y - target

    ga, gb = g(lo), g(hi)
    if ga * gb > 0 and min(abs(ga), abs(gb)) > tol:
        a, b = evals[0]["value"], evals[1]["value"]
        raise TargetUnreachable(
            f"target {target:g} is outside what η in [{lo:g}, {hi:g}] reaches "
            f"({min(a, b):.4g} … {max(a, b):.4g}); widen --range"
        )
    a, b, side = lo, hi, 0
    while len(evals) < max_evals and min(abs(e["value"] - target) for e in evals) > tol:
        c = (a * gb - b * ga) / (gb - ga) if gb != ga else (a + b) / 2
        if not min(a, b) < round(c, 6) < max(a, b):
            c = (a + b) / 2
        gc = g(c)
        if gc * gb < 0:
            a, ga = b, gb
            side = 0
        else:
            ga = ga / 2 if side == -1 else ga  # Illinois: halve the stale end
            side = -1
        b, gb = c, gc
    best = min(evals, key=lambda e: (abs(e["value"] - target), abs(e["eta"])))
    return best["eta"], best["value"], evals


def tune(
    core: Core,
    recipe: str,
    metric: str,
    target: float,
    vary: str | None = None,
    lo: float = 0.0,
    hi: float = 2.0,
    tol: float | None = None,
    max_evals: int = 12,
    on_eval: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Find η for term `vary` so that `metric` ≈ `target`; write it as a new recipe version.

    `on_eval` hears each evaluation as it finishes: {"n", "max_evals", "eta", "value"}.
    """
    require("train", "torch", "transformers", what="tune")
    r = get_recipe(core, recipe)
    names = [t.vector.name for t in r.terms]
    if vary is None:
        if len(names) != 1:
            raise RegistryError(f"recipe {r.ref} has {len(names)} terms: pass --vary VECTOR")
        vary = names[0]
    if Ref.parse(vary).name not in names:
        raise RegistryError(f"recipe {r.ref} has no term {vary!r} (terms: {', '.join(names)})")
    idx = names.index(Ref.parse(vary).name)
    value = metric_function(core, r, metric)
    terms = [(t.vector.ref, t.weight) for t in r.terms]

    done = 0

    def f(eta: float) -> float:
        nonlocal done
        y = value([(ref, eta if i == idx else w) for i, (ref, w) in enumerate(terms)])
        done += 1
        if on_eval is not None:
            on_eval({"n": done, "max_evals": max_evals, "eta": eta, "value": y})
        return y

    probe = [f(lo), f(hi)]  # the tolerance scales with what the range spans
    tol = tol if tol is not None else 0.005 * abs(probe[1] - probe[0])
    cache = {round(lo, 6): probe[0], round(hi, 6): probe[1]}
    eta, got, evals = search(lambda x: cache.pop(x) if x in cache else f(x), target, lo, hi, tol, max_evals)
    spec = {
        "name": r.name,
        "base": r.base.name,
        "method": r.method,
        "dtype": r.dtype,
        "parameters": r.params,
        "terms": [{"vector": ref, "weight": eta if i == idx else w} for i, (ref, w) in enumerate(terms)],
    }
    new, created = add_recipe(core, spec)
    record = {
        "from": r.ref,
        "metric": metric,
        "target": target,
        "vary": names[idx],
        "range": [lo, hi],
        "tolerance": tol,
        "evaluations": evals,
        "eta": eta,
        "value": got,
    }
    core.audit_now("recipe.tune", new.ref, record)
    return {"recipe": new.ref, "created": created, **record}

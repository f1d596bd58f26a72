"""Recorded sweeps: a vector or recipe measured over an η grid, kept as review evidence.

`registry sweep REF --record` measures, at every point of a one- or two-term η grid, what
a chat user sees (greedy answers through the chat template to held-out prompts: their
length, variety and repetition), what it costs (perplexity drift on the retention corpus)
and, where the training plugin has held-out pairs, its DPO margin; a few answers per point
are kept, to the same prompts at every point. A vector alone is θbase + η·φ; a second
`--vary` adds another vector (or varies a second term of a recipe). The result is a record
of `registry.records.evaluations`, tied to the exact digest measured.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from registry.errors import RegistryError
from registry.evaluation.behaviour import ANSWER_METRICS, eval_decoding, evaluate
from registry.evaluation.retention import corpus_path, load_corpus
from registry.evaluation.scoring import completion_logprobs, load_model, merged_state
from registry.evaluation.sweep import evaluators_for
from registry.evaluation.text_measures import summarize
from registry.plugins.loader import EVALUATORS, load
from registry.records.evaluations import (
    EvaluationPoint,
    EvaluationRecord,
    prompts_digest,
    resolve_subject,
    save_evaluation,
    subject_digest,
)
from registry.records.runs import library_versions
from registry.records.vectors import get_vector
from registry.training.generation import generate_answers
from registry.util.digests import file_sha256
from registry.util.extras import require
from registry.util.numbers import finite32
from registry.util.refs import Ref

if TYPE_CHECKING:
    from registry.core import Core

DEFAULT_ETAS = (-1.0, -0.5, 0.0, 0.5, 1.0)
# measured in every recorded evaluation, beside the plugins' own
DEFAULT_METRICS = ("answer_length", "mattr", "repeated_4grams", "ppl_drift")
# answer metrics (behaviour.ANSWER_METRICS) are read from the answers decoded here,
# to the evaluation's own prompts
DEFAULT_SAMPLES = 3


def _plan(core: Core, ref: str, vary: Sequence[str], kind: str | None, base: str | None) -> dict[str, Any]:
    """The subject, the terms merged (name -> (ref, weight)), which are varied, and the subject's own point."""
    kind, row = resolve_subject(core, ref, kind, base)
    names = [Ref.parse(v, "vector reference").name for v in vary]
    if len(set(names)) != len(names):
        raise RegistryError("each term may be varied once")
    if kind == "vector":
        terms = {row.name: (row.ref, 1.0)}
        for v, name in zip(vary, names, strict=True):
            if name != row.name:  # a second vector of the same base beside the subject
                terms[name] = (get_vector(core, v, row.base.name).ref, 0.0)
        varied = [row.name, *(n for n in names if n != row.name)]
        method, params, own = "linear", {}, {n: (1.0 if n == row.name else 0.0) for n in varied}
    else:
        terms = {t.vector.name: (t.vector.ref, t.weight) for t in row.terms}
        if not names:
            raise RegistryError(
                f"name the term(s) of recipe {row.ref} to vary: --vary TERM, once or twice "
                f"(its terms: {', '.join(terms)})"
            )
        missing = [n for n in names if n not in terms]
        if missing:
            raise RegistryError(
                f"vector {missing[0]} is not a term of recipe {row.ref} (its terms: {', '.join(terms)}); "
                "vary one of them, or add a recipe version that has it"
            )
        varied, method, params = names, row.method, row.params
        own = {n: terms[n][1] for n in varied}
    if len(varied) > 2:
        raise RegistryError("an evaluation varies one or two terms")
    return {
        "kind": kind,
        "row": row,
        "terms": terms,
        "varied": varied,
        "method": method,
        "params": params,
        "own": own,
    }


def default_prompts(core: Core, refs: Sequence[str], base: str) -> tuple[list[str], str]:
    """The held-out prompts of the first vector's training plugin (its held-out split, or its
    held-out pairs' prompts), else the verbose plugin's held-out split; and where they came from."""
    for ref in refs:
        run = get_vector(core, ref, base).run
        if run is None or not run.plugin:
            continue
        plugin, options = load(run.plugin), run.params.get("plugin_options", {})
        prompts = list(getattr(plugin, "heldout_prompts", lambda **_: [])(**options))
        prompts = prompts or [p.prompt for p in plugin.heldout(**options)]
        if prompts:
            return prompts, f"plugin {plugin.name} {plugin.version} held-out split"
    plugin = load("verbose")
    prompts = list(plugin.heldout_prompts())
    if not prompts:
        raise RegistryError("no held-out prompts to evaluate answers on")
    return prompts, f"plugin {plugin.name} {plugin.version} held-out split"


def _versions(names: Sequence[str]) -> dict[str, str]:
    out = {}
    eps = EVALUATORS.entry_points()
    for name in names:
        if name.endswith("_margin"):
            out[name] = load(name.removesuffix("_margin")).version
        else:
            dist = getattr(eps.get(name), "dist", None)
            out[name] = getattr(dist, "version", None) or "unknown"
    return out


def _margins(model, tok, heldout, base_lp) -> dict[str, float]:
    out = {}
    for metric, pairs in heldout.items():
        pc, pr = (completion_logprobs(model, tok, pairs, w) for w in ("chosen", "rejected"))
        bc, br = base_lp[metric]
        out[metric] = sum((a - b) - (c - d) for a, b, c, d in zip(pc, bc, pr, br, strict=True)) / len(pairs)
    return out


def measure_grid(
    core: Core,
    ref: str,
    vary: Sequence[str] = (),
    etas: Sequence[float] = DEFAULT_ETAS,
    evaluators: Sequence[str] = (),
    prompts: int | Sequence[str] | None = None,
    samples: int = DEFAULT_SAMPLES,
    seed: int = 0,
    kind: str | None = None,
    base: str | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Every metric at every grid point: the fields of an evaluation record, not yet saved.

    `prompts`: the first N default held-out prompts, or the prompts themselves."""
    require("train", "torch", "transformers", what="sweep")
    import torch
    from transformers import AutoTokenizer

    bad = [e for e in etas if not finite32(e)]
    if bad or not etas:
        raise RegistryError(
            f"η must be finite numbers (as float32: |η| ≤ 3.4e38), not {', '.join(map(str, bad)) or 'none'}"
        )
    if samples < 0:
        raise RegistryError(f"--samples must be 0 or more, not {samples}")
    started = time.monotonic()
    say = log or (lambda _m: None)
    plan = _plan(core, ref, vary, kind, base)
    row, terms, varied = plan["row"], plan["terms"], plan["varied"]
    b = row.base
    refs = [terms[n][0] for n in varied]
    evals = evaluators_for(
        core, [r for r, _w in terms.values()], b.name, [e for e in evaluators if e not in ANSWER_METRICS]
    )
    wanted = [*DEFAULT_METRICS, *(e for e in evaluators if e in ANSWER_METRICS)]
    for name in wanted:
        if name not in ANSWER_METRICS:
            evals.add_evaluator(name)
    answer_names = sorted(
        {*(n for n in wanted if n in ANSWER_METRICS), *(n for n in evals.evaluators if n in ANSWER_METRICS)}
    )
    others = {n: ev for n, ev in evals.evaluators.items() if n not in ANSWER_METRICS}
    if isinstance(prompts, int | None):
        chosen, source = default_prompts(core, refs, b.name)
        if prompts is not None:
            if prompts < 1:
                raise RegistryError(f"--prompts must be at least 1, not {prompts}")
            source = f"{source} (first {min(prompts, len(chosen))} of {len(chosen)} prompts)"
            chosen = chosen[:prompts]
        else:
            source = f"{source} ({len(chosen)} prompts)"
    else:
        chosen, source = list(prompts), f"given prompts ({len(prompts)})"
    if not chosen:
        raise RegistryError("no prompts to evaluate answers on")
    decoding = replace(eval_decoding(), seed=seed)
    grid = {n: [float(e) for e in etas] for n in varied}
    total = len(etas) ** len(varied)
    say(
        f"evaluating {plan['kind']} {row.ref} on {b.name}: {total} points × {len(chosen)} prompts "
        f"(at most {decoding.max_new_tokens} new tokens each)"
    )

    tok = AutoTokenizer.from_pretrained(b.path)
    model = load_model(b.path)
    base_lp = {
        m: [completion_logprobs(model, tok, p, w) for w in ("chosen", "rejected")]
        for m, p in evals.margins.items()
    }
    needs_base = any(getattr(e, "needs_base", False) for e in others.values())
    base_model = load_model(b.path) if needs_base else None
    corpus = load_corpus(corpus_path(core)) if needs_base else None
    points = []
    for i, point in enumerate(itertools.product(*grid.values()), 1):
        weights = dict(zip(varied, point, strict=True))
        merged = [(ref_, weights.get(name, w)) for name, (ref_, w) in terms.items()]
        model.load_state_dict(
            merged_state(core, b.name, merged, plan["method"], plan["params"]), strict=False
        )
        torch.manual_seed(seed)
        metrics = _margins(model, tok, evals.margins, base_lp)
        answers = generate_answers(
            model,
            tok,
            chosen,
            decoding,
            on_batch=lambda done, n, i=i: say(f"point {i}/{total}: {done}/{n} answers"),
        )
        measures = {
            **summarize([a.text for a in answers]),
            "finished": sum(a.finished for a in answers) / len(answers),
        }
        metrics.update({n: measures[ANSWER_METRICS[n]] for n in answer_names})
        metrics.update(evaluate(list(others.values()), model, tok, base_model, corpus))
        shown = [{"prompt": a.prompt, "answer": a.text} for a in answers[:samples]]
        points.append(EvaluationPoint(weights, metrics, shown))
        say(
            f"point {i}/{total} "
            + " ".join(f"η[{n}]={e:+g}" for n, e in weights.items())
            + ": "
            + " ".join(f"{k}={v:.4g}" for k, v in sorted(metrics.items()))
        )
    names = sorted(points[0].metrics)
    details: dict[str, Any] = {
        "terms": {n: r for n, (r, _w) in terms.items()},
        "fixed": {n: w for n, (_r, w) in terms.items() if n not in varied},
        "method": plan["method"],
        "subject_point": plan["own"],
        "prompts": chosen,
    }
    if corpus is not None:
        details["retention_corpus_digest"] = file_sha256(corpus_path(core))
    return {
        "subject_kind": plan["kind"],
        "subject_ref": row.ref,
        "subject_digest": subject_digest(plan["kind"], row),
        "base_name": b.name,
        "base_digest": b.digest,
        "evaluators": _versions(names),
        "prompts_digest": prompts_digest(chosen),
        "prompts_source": source,
        "seed": seed,
        "decoding": decoding.as_dict(),
        "grid": grid,
        "points": points,
        "library_versions": library_versions(),
        "seconds": round(time.monotonic() - started, 3),
        "created_by": core.actor,
        "details": details,
    }


def record_sweep(core: Core, ref: str, **options: Any) -> EvaluationRecord:
    """Measure (`measure_grid`'s options) and record the evaluation; audited."""
    return save_evaluation(core, **measure_grid(core, ref, **options))

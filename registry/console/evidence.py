"""Recorded evaluations as the vector and recipe pages show them, answers escaped and made visible.

Plots and heatmaps per metric, sample answers side by side (a prompt per row, a grid point per
column), perplexity drift against the retention limit, and who ran it when on which prompts.

Functions of an evaluation record (registry.records.evaluations), and `context` which reads them
for a page; the SVG comes from registry.console.svg and is the only markup handed to the
templates unescaped.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from markupsafe import Markup

from registry.console import queries, svg
from registry.governance.evidence import sound, subject_drift

if TYPE_CHECKING:
    from registry.core import Core
    from registry.records.evaluations import EvaluationPoint, EvaluationRecord

DRIFT = "ppl_drift"  # percent: 100 · (ppl(merged) / ppl(base) − 1), registry.evaluation.behaviour
# bidirectional overrides and isolates, zero-width and other invisible controls: shown as
# ⟨U+202E⟩ so a reviewer sees what the model wrote instead of text it reorders or hides
_CONTROLS = re.compile(
    "[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]"
)


def visible(text: str) -> str:
    """Model output with its invisible and direction-changing characters written as ⟨U+XXXX⟩
    (newlines and tabs kept); the template still escapes the result."""
    return _CONTROLS.sub(lambda m: f"⟨U+{ord(m.group()):04X}⟩", text)


def point_label(p: EvaluationPoint, terms: list[str]) -> str:
    if len(terms) == 1:
        return f"η = {svg.eta(p.etas[terms[0]])}"
    return " · ".join(f"{t} {svg.eta(p.etas[t])}" for t in terms)


@dataclass
class DriftRow:
    label: str
    drift: float | None
    over: bool | None  # None: no limit to compare with


@dataclass
class EvaluationView:
    record: Any
    terms: list[str]
    metrics: list[str]
    plots: list[Markup] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    samples: list[tuple[str, list[str]]] = field(default_factory=list)  # (prompt, answer per column)
    drift: list[DriftRow] = field(default_factory=list)
    drift_limit: float | None = None
    drift_passes: bool | None = None
    on_current_base: bool = True
    counts: bool = True  # evidence as approval counts it (recorded here or trusted, digest intact)
    subject_drift: float | None = None  # at the subject itself, as the approval gate reads it
    open: bool = False  # shown unfolded: the newest evaluation of each grid shape (one term, two)


def _value(p: EvaluationPoint, metric: str) -> float | None:
    v = p.metrics.get(metric)
    return float(v) if v is not None and math.isfinite(float(v)) else None


def plots(rec: EvaluationRecord, drift_limit: float | None = None) -> list[Markup]:
    """A line plot per metric (one varied term) or a heatmap per metric (two)."""
    terms = list(rec.grid)
    out = []
    for m in metrics_of(rec):
        limit = drift_limit if m == DRIFT else None
        if len(terms) == 1:
            t = terms[0]
            picture = svg.line_plot(
                m,
                t,
                [p.etas[t] for p in rec.points],
                [_value(p, m) for p in rec.points],
                threshold=limit,
                threshold_label="retention limit",
            )
        else:
            a, b = terms[:2]
            cells = {(p.etas[a], p.etas[b]): _value(p, m) for p in rec.points}
            for x in rec.grid[a]:  # every grid point has a cell, measured or not
                for y in rec.grid[b]:
                    cells.setdefault((float(x), float(y)), None)
            picture = svg.heatmap(m, (a, b), cells, threshold=limit)
        out.append(Markup(picture))  # built by xml.etree: every text in it is escaped
    return out


def metrics_of(rec: EvaluationRecord) -> list[str]:
    """Metric names in the order the evaluators were named, then any others a point reports."""
    seen: dict[str, None] = {}
    for name in rec.evaluators:
        if any(name in p.metrics for p in rec.points):
            seen[name] = None
    for p in rec.points:
        for name in p.metrics:
            seen.setdefault(name, None)
    return list(seen)


def ordered_points(rec: EvaluationRecord) -> list[EvaluationPoint]:
    terms = list(rec.grid)
    return sorted(rec.points, key=lambda p: tuple(p.etas.get(t, 0.0) for t in terms))


def sample_table(rec: EvaluationRecord) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """(column labels, rows): one row per prompt (in the order of the first point), one column
    per grid point in η order; a prompt a point lacks shows '—'."""
    terms = list(rec.grid)
    pts = ordered_points(rec)
    prompts: dict[str, None] = {}
    for p in pts:
        for s in p.samples:
            prompts.setdefault(s.get("prompt", ""), None)
    columns = [point_label(p, terms) for p in pts]
    answers = [{s.get("prompt", ""): s.get("answer", "") for s in p.samples} for p in pts]
    rows = [(visible(q), [visible(a[q]) if q in a else "—" for a in answers]) for q in prompts]
    return columns, rows


def drift_rows(rec: EvaluationRecord, limit: float | None) -> list[DriftRow]:
    terms = list(rec.grid)
    rows = []
    for p in ordered_points(rec):
        if DRIFT not in p.metrics:
            continue
        v = _value(p, DRIFT)
        over = None if limit is None or v is None else v > limit
        rows.append(DriftRow(point_label(p, terms), v, over))
    return rows


def view(
    rec: EvaluationRecord, drift_limit: float | None = None, base_digest: str | None = None
) -> EvaluationView:
    """Everything the evaluation section of a page shows for one record; `drift_limit` in percent
    (as the ppl_drift metric), `base_digest` the subject's base as registered now."""
    columns, rows = sample_table(rec)
    drift = drift_rows(rec, drift_limit)
    checked = [r.over for r in drift if r.over is not None]
    return EvaluationView(
        record=rec,
        terms=list(rec.grid),
        metrics=metrics_of(rec),
        plots=plots(rec, drift_limit),
        columns=columns,
        samples=rows,
        drift=drift,
        drift_limit=drift_limit,
        drift_passes=(not any(checked)) if checked else None,
        on_current_base=base_digest is None or rec.base_digest == base_digest,
        counts=bool(sound([rec])),
        subject_drift=subject_drift(rec),
    )


def views(
    records: list[EvaluationRecord], drift_limit: float | None, base_digest: str | None
) -> list[EvaluationView]:
    """Views of `records` (newest first); the newest one-term and the newest two-term evaluation
    are unfolded, older ones folded."""
    out, shapes = [], set()
    for r in records:
        v = view(r, drift_limit, base_digest)
        v.open = len(r.grid) not in shapes
        shapes.add(len(r.grid))
        out.append(v)
    return out


def context(core: Core, kind: str, ref: str, digest: str, base_digest: str) -> dict[str, Any]:
    """What a vector or recipe page adds for its evaluations: `evaluations`, `subject_ref`, and
    `evidence_missing` when the team policy requires an evaluation and none counts."""
    found = views(queries.evaluations(core, kind, digest), queries.drift_limit(core), base_digest)
    policy = core.policy()
    return {
        "evaluations": found,
        "subject_ref": ref,
        # the approval gate will refuse: the policy wants evidence and none counts
        "evidence_missing": policy.approval_requires_evaluation
        and not any(v.counts and v.on_current_base for v in found),
    }

"""Recorded behaviour evaluations: what a vector or recipe does to its base, kept as evidence.

A record names the exact digest it measured (a vector's φ digest, a recipe's content
digest) and its base's digest, the evaluators and their versions, the prompts (digest and
where they came from), seed and decoding, the η grid (one or two varied terms), every
metric at every grid point and a few sample answers per point (the same prompts at every
point). Its `digest` is over all of that, so a bundle carries it under its signature and an
edited record is caught (`verify_record`). Records are never changed once written.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.db import outbox
from registry.db.models import Evaluation, utcnow
from registry.errors import IntegrityError, NotFound, RegistryError
from registry.records.recipes import get_recipe
from registry.records.vectors import get_vector
from registry.util.digests import content_digest, pairs_digest

if TYPE_CHECKING:
    from registry.core import Core

KINDS = ("vector", "recipe")
SCHEMA = "registry.evaluation/1"


@dataclass(frozen=True)
class EvaluationPoint:
    etas: dict[str, float]  # varied term name -> η at this point (one or two entries)
    metrics: dict[str, float | None]  # evaluator name -> value (None: not a finite number)
    samples: list[dict[str, str]]  # [{"prompt": ..., "answer": ...}], the same prompts at every point

    def as_json(self) -> dict[str, Any]:
        return {
            "etas": dict(self.etas),
            "metrics": dict(self.metrics),
            "samples": [dict(x) for x in self.samples],
        }


@dataclass(frozen=True)
class EvaluationRecord:
    id: int
    subject_kind: str  # "vector" | "recipe"
    subject_ref: str  # e.g. "verbose@v1" / "mix@v2"
    subject_digest: str
    base_name: str
    base_digest: str
    evaluators: dict[str, str]  # name -> version
    prompts_digest: str
    prompts_source: str  # e.g. "plugin verbose 2.1.0 held-out split (40 prompts)"
    seed: int
    decoding: dict[str, Any]  # max_new_tokens, temperature (0: greedy), top_p, batch_size, seed
    grid: dict[str, list[float]]  # varied term -> η values (1 or 2 terms)
    points: list[EvaluationPoint]  # every grid point (the product of the grid), in grid order
    library_versions: dict[str, str]
    seconds: float
    created_by: str
    created_at: datetime  # UTC (naive in the database, aware here)
    digest: str  # content digest of everything above except id
    # what else the evaluation fixed: the other terms' weights, merge method, the point that
    # is the subject itself (`subject_point`), retention corpus digest and threshold
    details: dict[str, Any] = field(default_factory=dict)
    imported_by: str | None = None  # who imported it from a bundle (not part of the digest)
    signed_by: str | None = None  # the trusted key that signed it in that bundle (not part of it)

    @property
    def counts_as_evidence(self) -> bool:
        """Recorded here, or imported under a signature of a key trusted here."""
        return self.imported_by is None or self.signed_by is not None

    @property
    def metric_names(self) -> list[str]:
        return sorted({m for p in self.points for m in p.metrics})

    def point(self, etas: dict[str, float]) -> EvaluationPoint | None:
        """The grid point at exactly these η values, if the grid has it."""
        return next((p for p in self.points if p.etas == etas), None)

    def subject_metrics(self) -> dict[str, float | None] | None:
        """The metrics at the subject itself (a vector at η = 1, a recipe at its own weights),
        or None when the grid does not contain that point."""
        own = self.details.get("subject_point")
        p = self.point(own) if isinstance(own, dict) else None
        return dict(p.metrics) if p else None

    def worst(self, metric: str) -> float | None:
        """The largest value of `metric` over the grid (None when never measured)."""
        values = [p.metrics.get(metric) for p in self.points]
        known = [v for v in values if v is not None]
        return max(known) if known else None

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            **content(self),
            "digest": self.digest,
            "imported_by": self.imported_by,
            "signed_by": self.signed_by,
        }


def _iso(t: datetime) -> str:
    return t.replace(tzinfo=None).isoformat(timespec="seconds") + "Z"


def content(r: EvaluationRecord) -> dict[str, Any]:
    """Everything the record's digest covers, as JSON (the form bundles carry)."""
    return {
        "schema": SCHEMA,
        "subject_kind": r.subject_kind,
        "subject_ref": r.subject_ref,
        "subject_digest": r.subject_digest,
        "base_name": r.base_name,
        "base_digest": r.base_digest,
        "evaluators": dict(r.evaluators),
        "prompts_digest": r.prompts_digest,
        "prompts_source": r.prompts_source,
        "seed": r.seed,
        "decoding": dict(r.decoding),
        "grid": {k: list(v) for k, v in r.grid.items()},
        "points": [p.as_json() for p in r.points],
        "library_versions": dict(r.library_versions),
        "seconds": r.seconds,
        "created_by": r.created_by,
        "created_at": _iso(r.created_at),
        "details": dict(r.details),
    }


def record_digest(r: EvaluationRecord) -> str:
    return content_digest(content(r))


def prompts_digest(prompts: list[str]) -> str:
    """The digest of a prompt set, in order (one JSON line per prompt)."""
    return pairs_digest((p,) for p in prompts)


def _metric(v: Any) -> float | None:
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def _check(r: EvaluationRecord) -> None:
    """One line when the record is not a well-formed evaluation (nothing is written then)."""
    if r.subject_kind not in KINDS:
        raise RegistryError(f"an evaluation's subject is a vector or a recipe, not {r.subject_kind!r}")
    if not 1 <= len(r.grid) <= 2 or any(not v for v in r.grid.values()):
        raise RegistryError("an evaluation's grid varies one or two terms, each over at least one η")
    expected = [dict(zip(r.grid, etas, strict=True)) for etas in itertools.product(*r.grid.values())]
    if [p.etas for p in r.points] != expected:
        raise RegistryError(
            f"an evaluation needs every grid point in grid order ({len(expected)}), not {len(r.points)} points"
        )
    prompts = [[x["prompt"] for x in p.samples] for p in r.points]
    if any(x != prompts[0] for x in prompts):
        raise RegistryError("an evaluation's sample answers must answer the same prompts at every point")
    names = [sorted(p.metrics) for p in r.points]
    if any(n != names[0] for n in names):
        raise RegistryError("an evaluation measures the same metrics at every point")


def draft(
    *,
    subject_kind: str,
    subject_ref: str,
    subject_digest: str,
    base_name: str,
    base_digest: str,
    evaluators: dict[str, str],
    prompts_digest: str,
    prompts_source: str,
    seed: int,
    decoding: dict[str, Any],
    grid: dict[str, list[float]],
    points: list[EvaluationPoint | dict[str, Any]],
    library_versions: dict[str, str],
    seconds: float,
    created_by: str,
    created_at: datetime | None = None,
    details: dict[str, Any] | None = None,
    imported_by: str | None = None,
    signed_by: str | None = None,
    digest: str | None = None,
) -> EvaluationRecord:
    """A checked, unsaved record (id 0) with its digest. `digest` (a bundle's record) must
    equal the digest of the fields given, else the record was changed after it was made."""
    pts = [
        EvaluationPoint(
            {k: float(v) for k, v in (p.etas if isinstance(p, EvaluationPoint) else p["etas"]).items()},
            {
                k: _metric(v)
                for k, v in (p.metrics if isinstance(p, EvaluationPoint) else p["metrics"]).items()
            },
            [
                {"prompt": str(x["prompt"]), "answer": str(x["answer"])}
                for x in (p.samples if isinstance(p, EvaluationPoint) else p["samples"])
            ],
        )
        for p in points
    ]
    at = created_at or utcnow()
    at = (at.astimezone(UTC) if at.tzinfo else at).replace(tzinfo=None, microsecond=0)
    draft = EvaluationRecord(
        id=0,
        subject_kind=subject_kind,
        subject_ref=subject_ref,
        subject_digest=subject_digest,
        base_name=base_name,
        base_digest=base_digest,
        evaluators={str(k): str(v) for k, v in evaluators.items()},
        prompts_digest=prompts_digest,
        prompts_source=prompts_source,
        seed=int(seed),
        decoding=dict(decoding),
        grid={str(k): [float(x) for x in v] for k, v in grid.items()},
        points=pts,
        library_versions={str(k): str(v) for k, v in library_versions.items()},
        seconds=float(seconds),
        created_by=created_by,
        created_at=at.replace(tzinfo=UTC),
        digest="",
        details=dict(details or {}),
        imported_by=imported_by,
        signed_by=signed_by,
    )
    _check(draft)
    computed = record_digest(draft)
    if digest is not None and digest != computed:
        raise IntegrityError(
            f"evaluation of {subject_kind} {subject_ref} does not match its digest: it was changed after it was recorded"
        )
    return dataclasses.replace(draft, digest=computed)


def from_content(doc: dict[str, Any]) -> dict[str, Any]:
    """The fields of `draft` from a record's JSON form (`content`, as bundles carry it)."""
    fields = {k: v for k, v in doc.items() if k not in ("schema", "id", "imported_by", "signed_by", "digest")}
    if doc.get("schema") != SCHEMA:
        raise IntegrityError(f"not an evaluation record of schema {SCHEMA}")
    at = str(fields.get("created_at", ""))
    fields["created_at"] = datetime.fromisoformat(at.removesuffix("Z")).replace(tzinfo=UTC)
    return fields


def record_evaluation(session: Session, **fields: Any) -> EvaluationRecord:
    """Add one evaluation row in `session` (flushed, not committed) and return it as written:
    the fields of `draft`, which checks them (and a bundle record's `digest`)."""
    rec = draft(**fields)
    row = Evaluation(
        **{k: v for k, v in content(rec).items() if k not in ("schema", "points", "created_at")},
        points=[p.as_json() for p in rec.points],
        created_at=rec.created_at.replace(tzinfo=None),
        imported_by=rec.imported_by,
        signed_by=rec.signed_by,
        digest=rec.digest,
    )
    session.add(row)
    session.flush()
    return to_record(row)


def to_record(row: Evaluation) -> EvaluationRecord:
    return EvaluationRecord(
        id=row.id,
        subject_kind=row.subject_kind,
        subject_ref=row.subject_ref,
        subject_digest=row.subject_digest,
        base_name=row.base_name,
        base_digest=row.base_digest,
        evaluators=dict(row.evaluators or {}),
        prompts_digest=row.prompts_digest,
        prompts_source=row.prompts_source,
        seed=row.seed,
        decoding=dict(row.decoding or {}),
        grid={k: list(v) for k, v in (row.grid or {}).items()},
        points=[EvaluationPoint(dict(p["etas"]), dict(p["metrics"]), list(p["samples"])) for p in row.points],
        library_versions=dict(row.library_versions or {}),
        seconds=row.seconds,
        created_by=row.created_by,
        created_at=row.created_at.replace(tzinfo=UTC),
        digest=row.digest,
        details=dict(row.details or {}),
        imported_by=row.imported_by,
        signed_by=row.signed_by,
    )


def verify_record(r: EvaluationRecord) -> None:
    """Refuse a record whose fields no longer give its digest (an edited row or bundle)."""
    if record_digest(r) != r.digest:
        raise IntegrityError(f"evaluation {r.id} of {r.subject_ref} does not match its digest")


def evaluations_for(
    session: Session, subject_kind: str, subject_digest: str, base_digest: str | None = None
) -> list[EvaluationRecord]:
    """Every evaluation of that exact digest (on that base, when given), newest first."""
    q = select(Evaluation).where(
        Evaluation.subject_kind == subject_kind, Evaluation.subject_digest == subject_digest
    )
    if base_digest is not None:
        q = q.where(Evaluation.base_digest == base_digest)
    return [to_record(r) for r in session.scalars(q.order_by(Evaluation.id.desc()))]


def get_evaluation(session: Session, evaluation_id: int) -> EvaluationRecord:
    row = session.get(Evaluation, evaluation_id)
    if row is None:
        raise NotFound("evaluation", str(evaluation_id))
    return to_record(row)


def all_evaluations(session: Session) -> list[EvaluationRecord]:
    """Every evaluation in the registry, newest first."""
    return [to_record(r) for r in session.scalars(select(Evaluation).order_by(Evaluation.id.desc()))]


# -- on a Core: references resolved, writes audited ------------------------------------------


def resolve_subject(
    core: Core, ref: str, kind: str | None = None, base: str | None = None
) -> tuple[str, Any]:
    """(kind, row) for `ref`: a recipe first, else a vector (as `lineage` resolves), unless `kind`."""
    if kind not in (None, *KINDS):
        raise RegistryError(f"kind must be vector or recipe, not {kind!r}")
    if kind in (None, "recipe"):
        try:
            return "recipe", get_recipe(core, ref)
        except NotFound:
            if kind == "recipe":
                raise
    return "vector", get_vector(core, ref, base)


def subject_digest(kind: str, row: Any) -> str:
    return row.content_digest if kind == "recipe" else row.digest


def evaluation_event(rec: EvaluationRecord) -> dict[str, Any]:
    """An `evaluation.recorded` webhook payload: what was measured, on which base, its numbers."""
    return {
        "evaluation": rec.id, rec.subject_kind: rec.subject_ref, "subject_digest": rec.subject_digest,
        "base": rec.base_name, "digest": rec.digest, "grid": rec.grid, "metrics": rec.subject_metrics(),
        "imported": rec.imported_by is not None,
    }  # fmt: skip


def save_evaluation(core: Core, **fields: Any) -> EvaluationRecord:
    """Write one evaluation in its own transaction, audited as `evaluation.recorded`."""

    def write() -> EvaluationRecord:
        with core.Session.begin() as s:
            rec = record_evaluation(s, **fields)
            core.audit(
                s,
                "evaluation.recorded",
                rec.subject_ref,
                {"evaluation": rec.id, "kind": rec.subject_kind, "digest": rec.digest, "grid": rec.grid},
            )
            outbox.emit(s, "evaluation.recorded", rec.subject_ref, evaluation_event(rec), core.actor)
            return rec

    return core.write(write)


def evaluations_of(
    core: Core, ref: str | None = None, kind: str | None = None, base: str | None = None
) -> list[EvaluationRecord]:
    """Evaluations of `ref`'s exact digest, newest first (every evaluation without `ref`)."""
    with core.Session() as s:
        if ref is None:
            return all_evaluations(s)
    kind, row = resolve_subject(core, ref, kind, base)
    with core.Session() as s:
        return evaluations_for(s, kind, subject_digest(kind, row))


def evaluation(core: Core, evaluation_id: int) -> EvaluationRecord:
    with core.Session() as s:
        return get_evaluation(s, evaluation_id)

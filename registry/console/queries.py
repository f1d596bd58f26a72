"""The console's reads: one page of rows per query, filtered in SQL, so pages stay fast at any size."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from registry.db.filters import Filter
from registry.db.models import (
    Alias,
    AuditEvent,
    BaseModel,
    Evaluation,
    Recipe,
    RecipeTerm,
    TrainingRun,
    Vector,
)
from registry.governance.evidence import sound
from registry.records.catalogue import where
from registry.records.evaluations import EvaluationRecord, evaluations_for, to_record

if TYPE_CHECKING:
    from registry.core import Core

PAGE = 50


@dataclass
class Page:
    rows: list[Any]
    total: int
    page: int
    size: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.size))


def _like(q: str) -> str:
    return "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _paged(s, q, page: int, size: int) -> Page:
    total = s.scalar(select(func.count()).select_from(q.order_by(None).subquery()))
    page = max(1, page)
    rows = list(s.execute(q.limit(size).offset((page - 1) * size)))
    return Page(rows, total or 0, page, size)


def vectors(core: Core, f: Filter | None = None, page: int = 1, size: int = PAGE) -> Page:
    """Vector rows (name, version, base, status, digest, created_at, created_by, norm, archived_at)
    that pass `f`, the filter `vector list` and REST use too (catalogue.Filter)."""
    stmt = select(
        Vector.name,
        Vector.version,
        BaseModel.name.label("base"),
        Vector.status,
        Vector.digest,
        Vector.created_at,
        Vector.created_by,
        Vector.norm,
        Vector.archived_at,
    ).join(BaseModel, BaseModel.id == Vector.base_id)
    stmt = stmt.where(*where(Vector, f or Filter()))
    with core.Session() as s:
        return _paged(s, stmt.order_by(Vector.name, Vector.version), page, size)


def recipes(core: Core, f: Filter | None = None, page: int = 1, size: int = PAGE) -> Page:
    stmt = select(
        Recipe.name,
        Recipe.version,
        BaseModel.name.label("base"),
        Recipe.status,
        Recipe.content_digest.label("digest"),
        Recipe.created_at,
        Recipe.created_by,
        Recipe.method,
        Recipe.archived_at,
    ).join(BaseModel, BaseModel.id == Recipe.base_id)
    stmt = stmt.where(*where(Recipe, f or Filter()))
    with core.Session() as s:
        return _paged(s, stmt.order_by(Recipe.name, Recipe.version), page, size)


def bases(core: Core, q: str = "") -> list[Any]:
    stmt = select(
        BaseModel.name,
        BaseModel.architecture,
        BaseModel.dtype,
        BaseModel.param_count,
        BaseModel.digest,
        BaseModel.created_at,
    )
    if q:
        stmt = stmt.where(BaseModel.name.ilike(_like(q), escape="\\"))
    with core.Session() as s:
        return list(s.execute(stmt.order_by(BaseModel.name)))


def base_names(core: Core) -> list[str]:
    with core.Session() as s:
        return list(s.scalars(select(BaseModel.name).order_by(BaseModel.name)))


def drafts(core: Core, page: int = 1, size: int = PAGE) -> tuple[Page, Page]:
    """What waits for review: draft vectors and draft recipes, oldest first."""
    with core.Session() as s:
        v = _paged(
            s,
            select(
                Vector.name,
                Vector.version,
                BaseModel.name.label("base"),
                Vector.digest,
                Vector.created_at,
                Vector.created_by,
            )
            .join(BaseModel, BaseModel.id == Vector.base_id)
            .where(Vector.status == "draft", Vector.archived_at.is_(None))
            .order_by(Vector.created_at, Vector.id),
            page,
            size,
        )
        r = _paged(
            s,
            select(
                Recipe.name,
                Recipe.version,
                BaseModel.name.label("base"),
                Recipe.content_digest.label("digest"),
                Recipe.created_at,
                Recipe.created_by,
                Recipe.method,
            )
            .join(BaseModel, BaseModel.id == Recipe.base_id)
            .where(Recipe.status == "draft", Recipe.archived_at.is_(None))
            .order_by(Recipe.created_at, Recipe.id),
            page,
            size,
        )
    return v, r


def events(
    core: Core,
    actor: str = "",
    action: str = "",
    obj: str = "",
    since: datetime | None = None,
    until: datetime | None = None,
    page: int = 1,
    size: int = 100,
) -> Page:
    """Audit events, newest first; `action` matches a prefix (`vector.` or `vector.approved`)."""
    stmt = select(AuditEvent)
    if actor:
        stmt = stmt.where(AuditEvent.actor == actor)
    if action:
        stmt = stmt.where(AuditEvent.action.startswith(action, autoescape=True))
    if obj:
        stmt = stmt.where(
            (AuditEvent.object == obj) | AuditEvent.object.startswith(f"{obj}@", autoescape=True)
        )
    if since:
        stmt = stmt.where(AuditEvent.at >= since)
    if until:
        stmt = stmt.where(AuditEvent.at < until)
    with core.Session() as s:
        p = _paged(s, stmt.order_by(AuditEvent.id.desc()), page, size)
    p.rows = [r[0] for r in p.rows]
    return p


def lifecycle_events(core: Core, ref: str) -> list[AuditEvent]:
    """Approvals, deprecations and refusals of exactly this version, oldest first."""
    with core.Session() as s:
        q = select(AuditEvent).where(AuditEvent.object == ref).order_by(AuditEvent.id)
        shown = {"approved", "deprecated", "archived", "unarchived"}
        return [e for e in s.scalars(q) if e.action.split(".")[-1] in shown]


def consistency_note(core: Core, ref: str) -> dict[str, Any] | None:
    """The newest cross-seed consistency measurement recorded for this vector version, if any."""
    with core.Session() as s:
        e = s.scalar(
            select(AuditEvent)
            .where(AuditEvent.object == ref, AuditEvent.action == "vector.consistency")
            .order_by(AuditEvent.id.desc())
            .limit(1)
        )
    return dict(e.details) if e else None


def recipe_versions(core: Core, name: str) -> list[int]:
    with core.Session() as s:
        return list(s.scalars(select(Recipe.version).where(Recipe.name == name).order_by(Recipe.version)))


def aliases_of(core: Core, name: str) -> list[Alias]:
    with core.Session() as s:
        q = select(Alias).options(selectinload(Alias.recipe)).where(Alias.recipe_name == name)
        return list(s.scalars(q.order_by(Alias.alias)))


def runs(core: Core, page: int = 1, size: int = PAGE) -> Page:
    with core.Session() as s:
        p = _paged(s, select(TrainingRun).order_by(TrainingRun.id.desc()), page, size)
    p.rows = [r[0] for r in p.rows]
    return p


def run(core: Core, run_id: int) -> TrainingRun | None:
    with core.Session() as s:
        return s.get(TrainingRun, run_id)


def vector_objects(core: Core, rows: list[Any]) -> list[Vector]:
    """ORM vectors for a page of rows, for the JSON views (base loaded, in the rows' order)."""
    if not rows:
        return []
    keys = {(r.name, r.version, r.base) for r in rows}
    with core.Session() as s:
        q = (
            select(Vector)
            .join(BaseModel, BaseModel.id == Vector.base_id)
            .options(selectinload(Vector.base))
            .where(Vector.name.in_({k[0] for k in keys}))
        )
        found = {(v.name, v.version, v.base.name): v for v in s.scalars(q)}
    return [found[(r.name, r.version, r.base)] for r in rows]


def recipe_objects(core: Core, rows: list[Any]) -> list[Recipe]:
    if not rows:
        return []
    with core.Session() as s:
        q = (
            select(Recipe)
            .options(
                selectinload(Recipe.base),
                selectinload(Recipe.terms).selectinload(RecipeTerm.vector),
            )
            .where(Recipe.name.in_({r.name for r in rows}))
        )
        found = {(r.name, r.version): r for r in s.scalars(q)}
    return [found[(r.name, r.version)] for r in rows]


def recipe_marks(core: Core, rows: list[Any]) -> dict[tuple[str, int], dict[str, Any]]:
    """For a page of recipe rows: each version's recipe object, aliases and deprecated vectors."""
    objs = recipe_objects(core, rows)
    if not objs:
        return {}
    with core.Session() as s:
        found = list(s.scalars(select(Alias).where(Alias.recipe_name.in_({r.name for r in objs}))))
    return {
        (r.name, r.version): {
            "recipe": r,
            "aliases": sorted(a.alias for a in found if a.recipe_id == r.id),
            "deprecated": [t.vector.ref for t in r.terms if t.vector.status == "deprecated"],
        }
        for r in objs
    }


def evaluations(core: Core, kind: str, digest: str) -> list[EvaluationRecord]:
    """Recorded evaluations of exactly this vector or recipe digest, newest first."""
    with core.Session() as s:
        return evaluations_for(s, kind, digest)


def evidenced(core: Core, vector_rows: list[Any], recipe_rows: list[Any]) -> set[str]:
    """The digests among a queue page's rows that have evidence as approval counts it: an
    evaluation of that exact digest on the base it belongs to, sound (registry.governance.evidence).
    One query per kind."""
    out: set[str] = set()
    for kind, obj, own, rows in (
        ("vector", Vector, Vector.digest, vector_rows),
        ("recipe", Recipe, Recipe.content_digest, recipe_rows),
    ):
        if not rows:
            continue
        q = (
            select(Evaluation)
            .join(BaseModel, Evaluation.base_digest == BaseModel.digest)
            .join(obj, (obj.base_id == BaseModel.id) & (own == Evaluation.subject_digest))
            .where(Evaluation.subject_kind == kind, own.in_({r.digest for r in rows}))
        )
        with core.Session() as s:
            out |= {e.subject_digest for e in sound([to_record(row) for row in s.scalars(q)])}
    return out


def drift_limit(core: Core) -> float | None:
    """The perplexity drift (percent, as the ppl_drift metric) the team policy lets an approval's
    evaluation show, if set (`approval_max_ppl_drift`)."""
    return core.policy().approval_max_ppl_drift

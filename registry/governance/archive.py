"""Archiving: a version leaves every list and bare name, yet NAME@vN still resolves.

Locks, lineage and recipes that pin an archived version keep reading it; `registry gc` may
later remove an archived vector's store data when nothing live needs it (ops.collect).
An approved version, one behind an alias, or one a materialization (a lock file) names is
archived only by a policy admin with `force`; every archive, unarchive and refusal is audited.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from registry.db.models import Alias, Materialization, Recipe, RecipeTerm, Vector, utcnow
from registry.errors import DataCollected, InvalidTransition
from registry.governance.authority import refuse, require_admin
from registry.records.annotations import lookup, reread

if TYPE_CHECKING:
    from registry.core import Core


def _recipes_using(vector_id: int):
    return select(RecipeTerm.recipe_id).where(RecipeTerm.vector_id == vector_id)


def protections(s: Session, kind: str, obj: Recipe | Vector) -> list[str]:
    """Why archiving (or collecting) `obj` needs a policy admin's --force: approved, aliased, locked."""
    out = [f"{obj.ref} is approved"] if obj.status == "approved" else []
    recipe_ids = [obj.id] if kind == "recipe" else list(s.scalars(_recipes_using(obj.id)))
    if recipe_ids:
        aliases = s.execute(
            select(Alias.recipe_name, Alias.alias)
            .where(Alias.recipe_id.in_(recipe_ids))
            .order_by(Alias.alias)
        ).all()
        if aliases:
            out.append("behind " + ", ".join(f"{n}@{a}" for n, a in aliases))
        locks = s.execute(
            select(Materialization.id, Materialization.out_path)
            .where(Materialization.recipe_id.in_(recipe_ids))
            .order_by(Materialization.id)
        ).all()
        if locks:
            shown = ", ".join(p for _, p in locks[:3]) + (", …" if len(locks) > 3 else "")
            out.append(f"named by {len(locks)} materialization lock(s) ({shown})")
    return out


def live_recipes_using(s: Session, vector_id: int) -> list[str]:
    """Refs of recipe versions that are not archived and use this vector."""
    q = select(Recipe.name, Recipe.version).where(
        Recipe.id.in_(_recipes_using(vector_id)), Recipe.archived_at.is_(None)
    )
    return [f"{n}@v{v}" for n, v in s.execute(q.order_by(Recipe.name, Recipe.version))]


def recipes_needing(core: Core, v: Vector) -> list[str]:
    """Live recipe versions that use vector `v` (gc keeps its data for them)."""
    with core.Session() as s:
        return live_recipes_using(s, v.id)


def archive(
    core: Core,
    ref: str,
    kind: str = "recipe",
    base: str | None = None,
    reason: str | None = None,
    force: bool = False,
) -> Recipe | Vector:
    """Archive one exact version NAME@vN (hidden from lists and bare names, still resolvable)."""
    if "@v" not in ref:
        raise InvalidTransition(f"archive takes an exact version NAME@vN, not {ref!r}")
    with core.Session() as s:
        obj = lookup(s, kind, ref, base)
        guarded = protections(s, kind, obj)
    if obj.archived_at is not None:
        raise InvalidTransition(f"{kind} {obj.ref} is already archived")
    if force:
        require_admin(core, f"{kind}.archived", obj.ref, "archive with --force")
    elif guarded:
        refuse(
            core,
            f"{kind}.archived",
            obj.ref,
            f"{kind} {obj.ref}: {'; '.join(guarded)}: archiving it needs a policy admin and --force",
            {"actor": core.actor},
        )
    model = Recipe if kind == "recipe" else Vector

    def write() -> None:
        with core.Session.begin() as s:
            moved = s.execute(
                update(model)
                .where(model.id == obj.id, model.archived_at.is_(None))
                .values(archived_at=utcnow(), archived_by=core.actor)
                .execution_options(synchronize_session=False)
            ).rowcount
            if moved != 1:
                raise InvalidTransition(f"{kind} {obj.ref} is already archived")
            details = {"reason": reason, "forced": force, "protections": guarded, "base": obj.base.name}
            if kind == "vector":
                details["live_recipes"] = live_recipes_using(s, obj.id)
            core.audit(s, f"{kind}.archived", obj.ref, details)

    core.write(write)
    return reread(core, kind, obj)


def unarchive(
    core: Core, ref: str, kind: str = "recipe", base: str | None = None, reason: str | None = None
) -> Recipe | Vector:
    """Bring an archived version back into lists (refused once gc removed data it needs)."""
    if "@v" not in ref:
        raise InvalidTransition(f"unarchive takes an exact version NAME@vN, not {ref!r}")
    with core.Session() as s:
        obj = lookup(s, kind, ref, base)
        gone = [obj] if kind == "vector" else [t.vector for t in obj.terms]
        gone = [v for v in gone if v.collected_at is not None]
    if obj.archived_at is None:
        raise InvalidTransition(f"{kind} {obj.ref} is not archived")
    if gone:
        raise DataCollected(
            f"{kind} {obj.ref}: the store data of {', '.join(v.ref for v in gone)} was removed by "
            "`registry gc`; it cannot come back (import the vector again as a new version)"
        )
    model = Recipe if kind == "recipe" else Vector
    # checked again in the UPDATE itself: a gc that collects meanwhile makes it touch no row
    kept = (
        Vector.collected_at.is_(None)
        if kind == "vector"
        else ~select(RecipeTerm.id)
        .join(Vector, Vector.id == RecipeTerm.vector_id)
        .where(RecipeTerm.recipe_id == obj.id, Vector.collected_at.is_not(None))
        .exists()
    )

    def write() -> None:
        with core.Session.begin() as s:
            moved = s.execute(
                update(model)
                .where(model.id == obj.id, model.archived_at.is_not(None), kept)
                .values(archived_at=None, archived_by=None)
                .execution_options(synchronize_session=False)
            ).rowcount
            if moved != 1:
                raise InvalidTransition(f"{kind} {obj.ref} is not archived (or gc just collected it)")
            core.audit(s, f"{kind}.unarchived", obj.ref, {"reason": reason, "base": obj.base.name})

    core.write(write)
    return reread(core, kind, obj)

"""gc of archived vectors: remove the store data that nothing live needs, keep every row.

A vector's data is needed while any recipe version that is not archived uses it (never
collected, even with --force); an approved vector, one behind an alias, or one a
materialization's lock names (the materializations table) is collected only with --force by
a policy admin, and is listed as kept otherwise. Store data is never shared between vectors
(each row has its own store key), so no other vector needs it.

The row is marked collected (and the event audited) in one transaction whose UPDATE re-checks
those conditions, before the data is deleted: a crash in between leaves an orphan group that
the next gc removes, never a live row without its data.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update
from sqlalchemy.orm import selectinload

from registry.db.models import Recipe, RecipeTerm, Vector, utcnow
from registry.governance.archive import live_recipes_using, protections
from registry.governance.authority import require_admin

if TYPE_CHECKING:
    from registry.core import Core


def plan(core: Core, force: bool) -> tuple[list[tuple[Vector, list[str]]], list[dict[str, Any]]]:
    """(vectors to collect with what `force` overrides, vectors kept with why)."""
    collect, kept = [], []
    with core.Session() as s:
        rows = s.scalars(
            select(Vector)
            .options(selectinload(Vector.base))
            .where(Vector.archived_at.is_not(None), Vector.collected_at.is_(None))
            .order_by(Vector.name, Vector.version)
        )
        for v in list(rows):
            live, guarded = live_recipes_using(s, v.id), protections(s, "vector", v)
            if live:
                why = [f"used by live recipe(s) {', '.join(live)}"]
                kept.append({"ref": v.ref, "base": v.base.name, "why": why + guarded})
            elif guarded and not force:
                kept.append({"ref": v.ref, "base": v.base.name, "why": [*guarded, "collect with --force"]})
            else:
                collect.append((v, guarded))
    return collect, kept


def collect_archived(core: Core, dry_run: bool = False, force: bool = False) -> dict[str, Any]:
    """Remove archived vectors' store data; returns {"archived": [...], "kept": [...], "freed_bytes"}."""
    if force and not dry_run:  # a policy admin's act, asked for or not (as `recipe alias --force`)
        require_admin(core, "gc", "archived vectors", "collect approved, aliased or locked vectors (--force)")
    collect, kept = plan(core, force)
    done, freed = [], 0
    for v, guarded in collect:
        size = core.store.nbytes(v.store_key)
        entry = {"ref": v.ref, "base": v.base.name, "bytes": size, "forced": bool(guarded)}
        if dry_run:
            done.append(entry)
            freed += size
            continue
        if not core.write(lambda v=v, entry=entry, guarded=guarded: _mark(core, v, entry, guarded)):
            kept.append({"ref": v.ref, "base": v.base.name, "why": ["changed while gc ran"]})
            continue
        freed += core.store.delete(v.store_key)
        done.append(entry)
    return {"archived": done, "kept": kept, "freed_bytes": freed}


def _mark(core: Core, v: Vector, entry: dict[str, Any], guarded: list[str]) -> bool:
    live = (
        select(RecipeTerm.id)
        .join(Recipe, Recipe.id == RecipeTerm.recipe_id)
        .where(RecipeTerm.vector_id == v.id, Recipe.archived_at.is_(None))
        .exists()
    )
    with core.Session.begin() as s:
        moved = s.execute(
            update(Vector)
            .where(Vector.id == v.id, Vector.archived_at.is_not(None), Vector.collected_at.is_(None), ~live)
            .values(collected_at=utcnow())
            .execution_options(synchronize_session=False)
        ).rowcount
        if moved == 1:
            details = {"bytes": entry["bytes"], "forced": entry["forced"], "overridden": guarded}
            core.audit(s, "vector.collected", v.ref, {**details, "base": entry["base"]})
    return moved == 1

"""Aliases (NAME@prod): movable pointers at approved recipe versions, some protected."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from registry.db import outbox
from registry.db.models import Alias, Recipe, RecipeTerm, Vector
from registry.errors import NotApproved
from registry.governance.authority import refuse, require_admin
from registry.records.recipes import lookup_recipe
from registry.util.refs import Ref, check_alias

if TYPE_CHECKING:
    from registry.core import Core


def check_alias_move(core: Core, recipe_name: str, alias: str) -> None:
    """Protected aliases (e.g. prod) move only by their listed approvers."""
    approvers = core.policy().protected_aliases.get(alias)  # the team policy, read now
    if approvers is not None and core.actor not in approvers:
        refuse(
            core,
            "recipe.alias",
            f"{recipe_name}@{alias}",
            f"alias {alias} is protected: only {', '.join(approvers) or 'nobody'} may move it, not {core.actor}",
            {"actor": core.actor},
        )


def list_aliases(core: Core, name: str | None = None) -> list[Alias]:
    with core.Session() as s:
        q = select(Alias).options(selectinload(Alias.recipe)).order_by(Alias.recipe_name, Alias.alias)
        if name:
            q = q.where(Alias.recipe_name == name)
        return list(s.scalars(q))


def aliases_behind(core: Core, obj: Recipe | Vector) -> list[str]:
    """NAME@ALIAS pointers that reach `obj`: at the recipe version, or at a recipe using the vector."""
    q = select(Alias.recipe_name, Alias.alias).order_by(Alias.recipe_name, Alias.alias)
    if isinstance(obj, Recipe):
        q = q.where(Alias.recipe_id == obj.id)
    else:
        q = q.join(RecipeTerm, RecipeTerm.recipe_id == Alias.recipe_id).where(RecipeTerm.vector_id == obj.id)
    with core.Session() as s:
        return [f"{name}@{alias}" for name, alias in s.execute(q.distinct())]


def set_alias(core: Core, ref: str, alias: str, force: bool = False) -> Recipe:
    """Point NAME@alias at a recipe version; only approved versions unless forced.

    `force` is a policy admin's act on every path (CLI, library, console, REST), asked for
    or not: a reviewer's `--force` is refused even where the version happens to be approved.
    """
    check_alias(alias)
    r_ref = Ref.parse(ref, "recipe reference")
    if force:
        require_admin(
            core,
            "recipe.alias",
            f"{r_ref.name}@{alias}",
            "point an alias at a version that is not approved (--force)",
        )
    check_alias_move(core, r_ref.name, alias)

    def write() -> Recipe:
        with core.Session.begin() as s:
            r = lookup_recipe(s, r_ref)
            if r.status != "approved" and not force:
                raise NotApproved(
                    f"recipe {r.ref} is {r.status}: an alias may point only at an approved version "
                    "(approve it first, or use --force)"
                )
            a = s.scalar(select(Alias).where(Alias.recipe_name == r.name, Alias.alias == alias))
            previous = None
            if a is None:
                s.add(Alias(recipe_name=r.name, alias=alias, recipe_id=r.id))
            else:
                previous = a.recipe.ref
                a.recipe_id = r.id
            moved = {"to": r.ref, "from": previous, "forced": force}
            core.audit(s, "recipe.alias", f"{r.name}@{alias}", moved)
            payload = {"alias": f"{r.name}@{alias}", "recipe": r.name, "status": r.status, **moved}
            outbox.emit(s, "alias.moved", f"{r.name}@{alias}", payload, core.actor)
            return r

    return core.write(write)

"""The one filter of vector and recipe lists: status, base, tags, text search, archived or not.

`vector list` / `recipe list`, the REST list endpoints and the console catalogue all build a
`Filter` (db.filters) from their options and apply it with `where` to the same SQL query, so
the three answer alike. A search matches the name, the description and any tag value,
ignoring case.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import exists, select

from registry.db.filters import Filter
from registry.db.models import BaseModel, Recipe, RecipeTag, Vector, VectorTag


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def where(model: type[Vector] | type[Recipe], f: Filter) -> list[Any]:
    """The WHERE clauses of `f` for a query over vectors or recipes (no join needed)."""
    tag, owner = (VectorTag, VectorTag.vector_id) if model is Vector else (RecipeTag, RecipeTag.recipe_id)
    out: list[Any] = []
    if f.archived == "hide":
        out.append(model.archived_at.is_(None))
    elif f.archived == "only":
        out.append(model.archived_at.is_not(None))
    if f.status:
        out.append(model.status == f.status)
    if f.base:
        out.append(model.base_id.in_(select(BaseModel.id).where(BaseModel.name == f.base)))
    for key, value in f.tags:
        out.append(exists().where(owner == model.id, tag.key == key, tag.value == value))
    if f.search:
        pattern = _like(f.search)
        out.append(
            model.name.ilike(pattern, escape="\\")
            | model.description.ilike(pattern, escape="\\")
            | exists().where(owner == model.id, tag.value.ilike(pattern, escape="\\"))
        )
    return out

"""Tags and descriptions of vector and recipe versions: metadata beside the immutable content.

Neither is part of a recipe's content digest or a vector's digest, so they change without a
new version; each change is one transaction with its audit event (`KIND.tag`, `KIND.untag`,
`KIND.describe`) holding what was there before.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from registry.db.filters import check_tag_key, check_tag_value
from registry.db.models import Recipe, RecipeTag, Vector, VectorTag, utcnow
from registry.errors import InvalidFilter, InvalidTransition, NotFound
from registry.records.recipes import MAX_DESCRIPTION, lookup_recipe
from registry.records.vectors import lookup_vector
from registry.util.refs import Ref

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from registry.core import Core

KINDS = ("recipe", "vector")


def lookup(s: Session, kind: str, ref: str, base: str | None = None) -> Recipe | Vector:
    """A recipe (NAME, NAME@vN, NAME@ALIAS) or vector (NAME, NAME@vN) version, by `kind`."""
    if kind not in KINDS:
        raise InvalidTransition(f"kind must be recipe or vector, not {kind!r}")
    parsed = Ref.parse(ref, f"{kind} reference")
    return lookup_recipe(s, parsed) if kind == "recipe" else lookup_vector(s, parsed, base)


def reread(core: Core, kind: str, obj: Recipe | Vector) -> Recipe | Vector:
    with core.Session() as s:
        if kind == "recipe":
            return lookup_recipe(s, Ref(obj.name, obj.version))
        return lookup_vector(s, Ref(obj.name, obj.version), base_id=obj.base_id)


def set_tags(
    core: Core, ref: str, tags: dict[str, str], kind: str = "recipe", base: str | None = None
) -> Recipe | Vector:
    """Set KEY=VALUE tags on one version (a key it already has takes the new value)."""
    if not tags:
        raise InvalidFilter("give at least one KEY=VALUE tag")
    tags = {check_tag_key(k): check_tag_value(k, v) for k, v in tags.items()}

    def write() -> Recipe | Vector:
        with core.Session.begin() as s:
            obj = lookup(s, kind, ref, base)
            have = {t.key: t for t in obj.tags}
            before = {k: have[k].value for k in tags if k in have}
            model = RecipeTag if kind == "recipe" else VectorTag
            for k, v in sorted(tags.items()):
                if k in have:
                    have[k].value, have[k].set_by, have[k].set_at = v, core.actor, utcnow()
                else:
                    obj.tags.append(model(key=k, value=v, set_by=core.actor))
            core.audit(s, f"{kind}.tag", obj.ref, {"set": tags, "previous": before, "base": obj.base.name})
            return obj

    return reread(core, kind, core.write(write))


def remove_tags(
    core: Core, ref: str, keys: list[str], kind: str = "recipe", base: str | None = None
) -> Recipe | Vector:
    """Remove tags by key; a key the version does not have is an error and nothing is removed."""
    if not keys:
        raise InvalidFilter("give at least one tag KEY to remove")
    keys = [check_tag_key(k) for k in keys]

    def write() -> Recipe | Vector:
        with core.Session.begin() as s:
            obj = lookup(s, kind, ref, base)
            have = {t.key: t for t in obj.tags}
            missing = [k for k in keys if k not in have]
            if missing:
                raise NotFound(f"tag of {kind} {obj.ref}", ", ".join(missing))
            removed = {k: have[k].value for k in keys}
            for k in keys:
                obj.tags.remove(have[k])
            core.audit(s, f"{kind}.untag", obj.ref, {"removed": removed, "base": obj.base.name})
            return obj

    return reread(core, kind, core.write(write))


def describe(
    core: Core, ref: str, text: str | None, kind: str = "recipe", base: str | None = None
) -> Recipe | Vector:
    """Set (or with an empty text, clear) the description of one version."""
    text = (text or "").strip() or None
    if text is not None and len(text) > MAX_DESCRIPTION:
        raise InvalidFilter(f"description too long: at most {MAX_DESCRIPTION} characters")

    def write() -> Recipe | Vector:
        with core.Session.begin() as s:
            obj = lookup(s, kind, ref, base)
            before, obj.description = obj.description, text
            details = {"description": text, "previous": before, "base": obj.base.name}
            core.audit(s, f"{kind}.describe", obj.ref, details)
            return obj

    return reread(core, kind, core.write(write))

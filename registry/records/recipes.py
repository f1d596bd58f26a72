"""Recipes: files parsed with one-line errors, immutable versions by content, movable aliases."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from registry.db import outbox
from registry.db.filters import Filter, check_tag_key, check_tag_value
from registry.db.models import Alias, Recipe, RecipeTag, RecipeTerm, Vector
from registry.errors import InvalidName, InvalidRecipe, NotFound, RegistryError
from registry.merging.methods import get_method
from registry.records.bases import lookup_base
from registry.records.catalogue import where
from registry.records.vectors import lookup_vector
from registry.util.digests import content_digest
from registry.util.finite import FLOAT32_MAX, finite32
from registry.util.numbers import as_number
from registry.util.refs import Ref, check_name

if TYPE_CHECKING:
    from registry.core import Core

DTYPES = ("bfloat16", "float16", "float32")
MAX_DESCRIPTION = 4000


class Term(BaseModel):
    model_config = ConfigDict(extra="forbid")
    vector: str
    weight: float

    @field_validator("vector")
    @classmethod
    def _ref(cls, v: str) -> str:
        try:
            Ref.parse(v, "vector reference")
        except InvalidName as e:
            raise ValueError(str(e)) from e
        return v

    @field_validator("weight", mode="before")
    @classmethod
    def _finite(cls, v: Any) -> float:
        v = as_number(v, "weight")  # `5e-1` is a string under YAML 1.1: read as the 0.5 meant
        if not math.isfinite(v):
            raise ValueError(f"weight must be a finite number, not {v!r}")
        if not finite32(v):  # merges compute in float32: 1e39 would be inf there
            raise ValueError(
                f"weight {v!r} is not finite as float32 (|weight| must stay below {FLOAT32_MAX:.4g})"
            )
        return float(v)


class RecipeSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    base: str
    method: str = "linear"
    terms: list[Term] = Field(min_length=1)
    dtype: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    # metadata, not content: not in the content digest, set on a new version only
    description: str | None = Field(None, max_length=MAX_DESCRIPTION)
    tags: dict[str, str] = Field(default_factory=dict)

    @field_validator("tags", mode="before")
    @classmethod
    def _tags(cls, v: Any) -> dict[str, str]:
        if not isinstance(v, dict):
            raise ValueError("tags must be a mapping of KEY: VALUE")
        bad = [str(k) for k, x in v.items() if isinstance(x, bool) or not isinstance(x, str | int | float)]
        if bad:
            raise ValueError(f"tag {bad[0][:64]}: a value is text or a number")
        try:
            return {check_tag_key(str(k)): check_tag_value(str(k), str(x)) for k, x in v.items()}
        except RegistryError as e:
            raise ValueError(str(e)) from e

    @field_validator("name", "base")
    @classmethod
    def _name(cls, v: str) -> str:
        try:
            return check_name(v)
        except InvalidName as e:
            raise ValueError(str(e)) from e

    @field_validator("dtype")
    @classmethod
    def _dtype(cls, v: str | None) -> str | None:
        if v is not None and v not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, not {v!r}")
        return v


def _one_line(source: str, err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        loc = ".".join(str(x) for x in e["loc"]) or "recipe"
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
        parts.append(f"{loc}: {msg}")
    return f"{source}: " + "; ".join(parts)


def parse_recipe(data: Any, source: str = "recipe") -> RecipeSpec:
    if not isinstance(data, dict):
        raise InvalidRecipe(f"{source}: a recipe must be a YAML mapping with name, base, method, terms")
    try:
        spec = RecipeSpec.model_validate(data)
    except ValidationError as e:
        raise InvalidRecipe(_one_line(source, e)) from None
    validate_parameters(spec.method, spec.parameters, source)
    return spec


def load_recipe_file(path: str | Path) -> RecipeSpec:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise InvalidRecipe(f"cannot read recipe {path}: {e.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or "malformed YAML"
        raise InvalidRecipe(f"{path.name}: malformed YAML{where}: {problem}") from None
    return parse_recipe(data, path.name)


def validate_parameters(method: str, parameters: dict[str, Any], source: str = "recipe") -> dict[str, Any]:

    for key, value in parameters.items() if isinstance(parameters, dict) else ():
        # checked before the method converts them: int(inf) would raise, NaN passes range checks
        if isinstance(value, float | int) and not isinstance(value, bool) and not finite32(value):
            raise InvalidRecipe(f"{source}: parameter {key} must be finite as float32, not {str(value)[:40]}")
    try:
        return get_method(method).validate_parameters(parameters)
    except ValueError as e:
        raise InvalidRecipe(f"{source}: {e}") from None


# -- verbs -------------------------------------------------------------------------------
def resolved_content(
    base: Any, method: str, params: dict[str, Any], dtype: str, terms: list[tuple[Vector, float]]
) -> dict[str, Any]:
    """What a recipe version means, by digest: the content its content_digest is taken over."""
    return {
        "base": {"name": base.name, "digest": base.digest},
        "method": method,
        "parameters": params,
        "dtype": dtype,
        "terms": [{"vector": v.ref, "digest": v.digest, "weight": w} for v, w in terms],
    }


def recipe_event(r: Recipe, base: Any, terms: list[tuple[Vector, float]]) -> dict[str, Any]:
    """A `recipe.created` webhook payload: the version, its digest and what it merges."""
    return {
        "recipe": r.ref, "content_digest": r.content_digest, "base": base.name, "method": r.method,
        "dtype": r.dtype, "status": r.status, "terms": [{"vector": v.ref, "weight": w} for v, w in terms],
    }  # fmt: skip


def recipe_row(
    name: str, version: int, base_id: int, method: str, dtype: str, params: dict, digest: str,
    terms: list[tuple[Vector, float]], status: str = "draft", created_by: str | None = None,
) -> Recipe:  # fmt: skip
    """A new Recipe row with its terms (used by `recipe add` and bundle import alike)."""
    return Recipe(
        created_by=created_by,
        name=name,
        version=version,
        base_id=base_id,
        method=method,
        dtype=dtype,
        params=params,
        content_digest=digest,
        status=status,
        terms=[RecipeTerm(position=i, vector_id=v.id, weight=w) for i, (v, w) in enumerate(terms)],
    )


def add_recipe(
    core: Core, source: str | Path | dict[str, Any], allow_deprecated: bool = False
) -> tuple[Recipe, bool]:
    """Add a recipe version; identical resolved content returns the existing one (False).

    A deprecated vector is refused unless pinned as NAME@vN with `allow_deprecated`.
    """
    spec = parse_recipe(source) if isinstance(source, dict) else load_recipe_file(source)
    params = validate_parameters(spec.method, spec.parameters, spec.name)

    def write() -> tuple[Recipe, bool]:
        with core.Session.begin() as s:
            b = lookup_base(s, spec.base)
            dtype = spec.dtype or b.dtype
            terms = []
            for i, t in enumerate(spec.terms):
                ref = Ref.parse(t.vector)
                try:
                    v = lookup_vector(s, ref, base_id=b.id)
                except NotFound as e:
                    raise InvalidRecipe(f"{spec.name}: terms.{i}.vector: {e}") from None
                if v.archived_at is not None:
                    raise InvalidRecipe(
                        f"{spec.name}: terms.{i}.vector: {v.ref} is archived "
                        f"(`registry unarchive --vector {v.ref}` first to use it in a new recipe)"
                    )
                if v.status == "deprecated" and not (allow_deprecated and ref.version is not None):
                    raise InvalidRecipe(
                        f"{spec.name}: terms.{i}.vector: {v.ref} is deprecated "
                        "(pin it as NAME@vN and pass --allow-deprecated to use it anyway)"
                    )
                if any(v.id == u.id for u, _ in terms):  # why: two terms of one vector hide a weight sum
                    first = next(j for j, (u, _) in enumerate(terms) if u.id == v.id)
                    raise InvalidRecipe(
                        f"{spec.name}: terms.{i}.vector: {v.ref} is already terms.{first}; "
                        "give each vector one term (add their weights)"
                    )
                terms.append((v, t.weight))
            content = resolved_content(b, spec.method, params, dtype, terms)
            digest = content_digest(content)
            existing = s.scalar(
                select(Recipe).where(Recipe.name == spec.name, Recipe.content_digest == digest)
            )
            if existing is not None:
                return lookup_recipe(s, Ref(spec.name, existing.version)), False
            latest = s.scalar(select(func.max(Recipe.version)).where(Recipe.name == spec.name))
            r = recipe_row(
                spec.name, (latest or 0) + 1, b.id, spec.method, dtype, params, digest, terms,
                created_by=core.actor,
            )  # fmt: skip
            r.description = spec.description
            r.tags = [RecipeTag(key=k, value=x, set_by=core.actor) for k, x in sorted(spec.tags.items())]
            s.add(r)
            s.flush()
            meta = (
                {"description": spec.description, "tags": spec.tags} if spec.description or spec.tags else {}
            )
            core.audit(s, "recipe.add", r.ref, {**content, **meta})
            outbox.emit(s, "recipe.created", r.ref, recipe_event(r, b, terms), core.actor)
            return lookup_recipe(s, Ref(r.name, r.version)), True

    return core.write(write)


def recipe_query():
    return select(Recipe).options(
        selectinload(Recipe.base),
        selectinload(Recipe.terms).selectinload(RecipeTerm.vector).selectinload(Vector.base),
        selectinload(Recipe.terms).selectinload(RecipeTerm.vector).selectinload(Vector.tensors),
    )


def list_recipes(core: Core, f: Filter | None = None) -> list[Recipe]:
    """Recipe versions by name and version; archived ones only as `f` asks (default: live ones)."""
    f = f or Filter()
    with core.Session() as s:
        if f.base:
            lookup_base(s, f.base)  # an unknown base is an error, not an empty list
        q = recipe_query().where(*where(Recipe, f))
        return list(s.scalars(q.order_by(Recipe.name, Recipe.version)))


def get_recipe(core: Core, ref: str) -> Recipe:
    with core.Session() as s:
        return lookup_recipe(s, Ref.parse(ref, "recipe reference"))


def lookup_recipe(s: Session, ref: Ref) -> Recipe:
    q = recipe_query().where(Recipe.name == ref.name)
    if ref.alias:
        a = s.scalar(select(Alias).where(Alias.recipe_name == ref.name, Alias.alias == ref.alias))
        if a is None:
            raise NotFound("recipe alias", str(ref))
        q = q.where(Recipe.id == a.recipe_id)
    elif ref.version is not None:
        q = q.where(Recipe.version == ref.version)
    else:  # a bare NAME never means an archived version
        q = q.where(Recipe.archived_at.is_(None))
    r = s.scalar(q.order_by(Recipe.version.desc()).limit(1))
    if r is None:
        hint = ""
        if (
            ref.version is None
            and not ref.alias
            and s.scalar(select(Recipe.id).where(Recipe.name == ref.name))
        ):
            hint = "every version is archived; pin one as NAME@vN"
        raise NotFound("recipe", str(ref), hint)
    return r

"""REST API under /api/v1: read bases, vectors, recipes, their evaluations, runs and audit events; approve,
deprecate, move aliases.

Registering recipes, tags, descriptions and archiving are in api_writes.

Bearer tokens only (no cookies, so no CSRF surface); errors are one line of JSON.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Query, Request
from pydantic import BaseModel as Schema
from pydantic import Field

from registry.console import actions, queries
from registry.console.accounts import User
from registry.console.actions import MAX_INT, MAX_PAGE, check_ref
from registry.console.auth import ApiError, bearer_user, registry
from registry.db.as_json import base_view, event_view, recipe_view, run_view, vector_view
from registry.db.filters import Filter
from registry.errors import RegistryError

router = APIRouter(prefix="/api/v1")
Auth = Annotated[User, Depends(bearer_user)]


class Decision(Schema):
    reason: str = Field(description="Why (recorded in the audit log).")


class AliasMove(Schema):
    alias: str = Field(description="Alias to point at this version, e.g. prod.")
    force: bool = Field(False, description="Point at a version that is not approved (admin only).")


def _read(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except RegistryError as e:
        raise actions.http_error(e) from None


def _utc(t: datetime | None) -> datetime | None:
    """The audit log stores naive UTC times."""
    return t.astimezone(UTC).replace(tzinfo=None) if t and t.tzinfo else t


def _page(p: queries.Page, items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"items": items, "total": p.total, "page": p.page, "pages": p.pages}


@router.get("/me", summary="The account this token belongs to")
def me(user: Auth) -> dict[str, str]:
    return {"name": user.name, "role": user.role}


@router.get("/bases", summary="List bases")
def list_bases(request: Request, user: Auth) -> list[dict[str, Any]]:
    return [base_view(b) for b in registry(request).bases()]


@router.get("/bases/{name}", summary="Show a base with its pinned files")
def show_base(request: Request, user: Auth, name: str) -> dict[str, Any]:
    return base_view(_read(registry(request).base, name), files=True)


def catalogue_filter(
    q: Annotated[str, Query(description="Same as search (kept for older clients).")] = "",
    search: Annotated[str, Query(description="Text in the name, description or a tag value.")] = "",
    status: Annotated[str, Query(description="draft, approved or deprecated.")] = "",
    base: Annotated[str, Query(description="Only this base.")] = "",
    tag: Annotated[list[str], Query(description="KEY=VALUE; repeat for all of them (AND).")] = [],  # noqa: B006
    archived: Annotated[str, Query(description="hide (default), only, or all.")] = "hide",
) -> Filter:
    """The filter `vector list` / `recipe list` and the console catalogue take (catalogue.Filter)."""
    try:
        return Filter.parse(status, base, [t for t in tag if t], search or q, archived)
    except RegistryError as e:
        raise ApiError(422, str(e)) from None


Filtered = Annotated[Filter, Depends(catalogue_filter)]


@router.get("/vectors", summary="List vectors (filtered, paginated)")
def list_vectors(
    request: Request,
    user: Auth,
    f: Filtered,
    page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
    size: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    reg = registry(request)
    p = queries.vectors(reg, f, page, size)
    return _page(p, [vector_view(v) for v in queries.vector_objects(reg, p.rows)])


@router.get("/vectors/{ref}", summary="Show a vector: lineage, interference, tensors")
def show_vector(request: Request, user: Auth, ref: str, base: str = "") -> dict[str, Any]:
    return vector_view(_read(registry(request).vector, check_ref(ref), base or None), detail=True)


@router.get(
    "/vectors/{ref}/evaluations",
    summary="Recorded evaluations of this vector version's exact digest, newest first",
)
def vector_evaluations(request: Request, user: Auth, ref: str, base: str = "") -> list[dict[str, Any]]:
    reg = registry(request)
    v = _read(reg.vector, check_ref(ref), base or None)
    return [e.as_json() for e in queries.evaluations(reg, "vector", v.digest)]


@router.get("/recipes", summary="List recipes (filtered, paginated)")
def list_recipes(
    request: Request,
    user: Auth,
    f: Filtered,
    page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
    size: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    reg = registry(request)
    p = queries.recipes(reg, f, page, size)
    aliases = reg.aliases()
    return _page(p, [recipe_view(r, aliases) for r in queries.recipe_objects(reg, p.rows)])


@router.get("/recipes/{ref}", summary="Show a recipe version (NAME, NAME@vN or NAME@ALIAS)")
def show_recipe(request: Request, user: Auth, ref: str) -> dict[str, Any]:
    reg = registry(request)
    r = _read(reg.recipe, check_ref(ref))
    return recipe_view(r, reg.aliases(r.name), detail=True)


@router.get(
    "/recipes/{ref}/evaluations",
    summary="Recorded evaluations of this recipe version's exact content digest, newest first",
)
def recipe_evaluations(request: Request, user: Auth, ref: str) -> list[dict[str, Any]]:
    reg = registry(request)
    r = _read(reg.recipe, check_ref(ref))
    return [e.as_json() for e in queries.evaluations(reg, "recipe", r.content_digest)]


@router.get("/runs", summary="List training and import runs, newest first")
def list_runs(
    request: Request,
    user: Auth,
    page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
    size: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    p = queries.runs(registry(request), page, size)
    return _page(p, [run_view(r) for r in p.rows])


@router.get("/runs/{run_id}", summary="Show a run")
def show_run(request: Request, user: Auth, run_id: Annotated[int, Path(ge=1, le=MAX_INT)]) -> dict[str, Any]:
    r = queries.run(registry(request), run_id)
    if r is None:
        raise ApiError(404, f"run not found: {run_id}")
    return run_view(r)


@router.get("/audit", summary="Audit events, newest first")
def audit(
    request: Request,
    user: Auth,
    actor: str = "",
    action: str = "",
    object: str = "",
    since: datetime | None = None,
    until: datetime | None = None,
    page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
) -> dict[str, Any]:
    p = queries.events(registry(request), actor, action, object, _utc(since), _utc(until), page)
    return _page(p, [event_view(e) for e in p.rows])


def _decided(obj, kind: str, user: User) -> dict[str, Any]:
    return {
        "ref": obj.ref,
        "kind": kind,
        "status": obj.status,
        "reason": obj.status_reason,
        "actor": user.name,
    }


@router.post("/vectors/{ref}/approve", summary="Approve a vector version")
def approve_vector(request: Request, user: Auth, ref: str, body: Decision, base: str = "") -> dict[str, Any]:
    return _decided(
        actions.set_status(request, user, "vector", ref, "approved", body.reason, base), "vector", user
    )


@router.post("/vectors/{ref}/deprecate", summary="Deprecate a vector version")
def deprecate_vector(
    request: Request, user: Auth, ref: str, body: Decision, base: str = ""
) -> dict[str, Any]:
    v = actions.set_status(request, user, "vector", ref, "deprecated", body.reason, base)
    return _decided(v, "vector", user)


@router.post("/recipes/{ref}/approve", summary="Approve a recipe version")
def approve_recipe(request: Request, user: Auth, ref: str, body: Decision) -> dict[str, Any]:
    return _decided(actions.set_status(request, user, "recipe", ref, "approved", body.reason), "recipe", user)


@router.post("/recipes/{ref}/deprecate", summary="Deprecate a recipe version")
def deprecate_recipe(request: Request, user: Auth, ref: str, body: Decision) -> dict[str, Any]:
    return _decided(
        actions.set_status(request, user, "recipe", ref, "deprecated", body.reason), "recipe", user
    )


@router.post("/recipes/{ref}/alias", summary="Point NAME@ALIAS at this recipe version")
def move_alias(request: Request, user: Auth, ref: str, body: Annotated[AliasMove, Body()]) -> dict[str, Any]:
    r = actions.move_alias(request, user, ref, body.alias, body.force)
    return {"alias": f"{r.name}@{body.alias}", "to": r.ref, "actor": user.name}

"""REST writes under /api/v1: register a recipe, tag, untag, describe, archive, unarchive.

Each is one library call on the registry opened as the token's account (actions.act), so the
rules, four-eyes (the account is the creator a later approval is checked against) and audit
events are those of the CLI. Every write needs the review right (reviewer or admin; a viewer
gets 403); `force` needs an admin account and, in the library, a policy admin.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import yaml
from fastapi import APIRouter, Body, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel as Schema
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from registry.console.accounts import User
from registry.console.actions import act, check_ref
from registry.console.api import Auth
from registry.console.auth import ApiError
from registry.db.as_json import annotation_view, recipe_view

router = APIRouter(prefix="/api/v1")
YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml", "text/plain")
RECIPE_BODY = {
    "requestBody": {
        "required": True,
        "description": "The recipe file `registry recipe add` reads: YAML text, or the same as JSON.",
        "content": {
            "application/yaml": {"schema": {"type": "string"}},
            "application/json": {"schema": {"type": "object"}},
        },
    }
}


class Tags(Schema):
    tags: dict[str, str] = Field(description="KEY: VALUE pairs to set (a key present takes the new value).")


class TagKeys(Schema):
    keys: list[str] = Field(description="Tag keys to remove (each must be present).")


class Description(Schema):
    description: str = Field(description='The new description ("" clears it).')


class Archival(Schema):
    reason: str | None = Field(None, max_length=2000, description="Why (recorded in the audit log).")
    force: bool = Field(
        False, description="Archive an approved, aliased or materialized version (admin only)."
    )


class Unarchival(Schema):
    reason: str | None = Field(None, max_length=2000, description="Why (recorded in the audit log).")


def parse_recipe_body(raw: bytes, content_type: str) -> Any:
    """A recipe body as data: JSON by its content type, YAML (the recipe file) otherwise."""
    media = content_type.split(";")[0].strip().lower()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "the recipe body must be UTF-8 text") from None
    if media == "application/json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as e:
            raise ApiError(400, f"malformed JSON at line {e.lineno}, column {e.colno}: {e.msg}") from None
    if media and media not in YAML_TYPES:
        raise ApiError(415, f"send the recipe as application/yaml or application/json, not {media[:60]}")
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ApiError(
            400, f"malformed YAML{where}: {getattr(e, 'problem', None) or 'cannot parse'}"
        ) from None


@router.post(
    "/recipes",
    summary="Register a recipe version (the YAML `recipe add` reads, or JSON)",
    openapi_extra=RECIPE_BODY,
    status_code=201,
    responses={200: {"description": "identical content: the existing version"}},
)
async def register_recipe(request: Request, user: Auth, allow_deprecated: bool = False) -> Any:
    data = parse_recipe_body(await request.body(), request.headers.get("content-type", ""))
    if not isinstance(data, dict):
        raise ApiError(400, "a recipe is a mapping with name, base, method and terms")

    def add(reg):
        r, created = reg.add_recipe(data, allow_deprecated)
        return {**recipe_view(r, reg.aliases(r.name)), "created": created, "actor": user.name}

    out = await run_in_threadpool(act, request, user, "review", add)
    return JSONResponse(out, status_code=201 if out["created"] else 200)


def _annotated(user: User, kind: str, obj) -> dict[str, Any]:
    return {**annotation_view(obj, kind), "actor": user.name}


def _routes(collection: str, kind: str) -> None:
    """tag, untag, describe, archive and unarchive under /api/v1/COLLECTION/{ref}/…"""
    what = f"a {kind} version"

    @router.post(f"/{collection}/{{ref}}/tag", summary=f"Set KEY=VALUE tags on {what}")
    def tag(request: Request, user: Auth, ref: str, body: Tags, base: str = "") -> dict[str, Any]:
        obj = act(request, user, "review", lambda reg: reg.tag(check_ref(ref), body.tags, kind, base or None))
        return _annotated(user, kind, obj)

    @router.post(f"/{collection}/{{ref}}/untag", summary=f"Remove tags by key from {what}")
    def untag(request: Request, user: Auth, ref: str, body: TagKeys, base: str = "") -> dict[str, Any]:
        obj = act(
            request, user, "review", lambda reg: reg.untag(check_ref(ref), body.keys, kind, base or None)
        )
        return _annotated(user, kind, obj)

    @router.post(f"/{collection}/{{ref}}/describe", summary=f"Set the description of {what}")
    def describe(request: Request, user: Auth, ref: str, body: Description, base: str = "") -> dict[str, Any]:
        text = body.description
        obj = act(request, user, "review", lambda reg: reg.describe(check_ref(ref), text, kind, base or None))
        return _annotated(user, kind, obj)

    @router.post(
        f"/{collection}/{{ref}}/archive",
        summary=f"Archive {what} (hidden from lists; NAME@vN still resolves)",
    )
    def archive(
        request: Request,
        user: Auth,
        ref: str,
        body: Annotated[Archival, Body()] = Archival(),  # noqa: B008 (a constant default body)
        base: str = "",
    ) -> dict[str, Any]:
        obj = act(
            request,
            user,
            "admin" if body.force else "review",
            lambda reg: reg.archive(check_ref(ref), kind, base or None, body.reason, body.force),
        )
        return _annotated(user, kind, obj)

    @router.post(f"/{collection}/{{ref}}/unarchive", summary=f"Bring archived {what} back into lists")
    def unarchive(
        request: Request,
        user: Auth,
        ref: str,
        body: Annotated[Unarchival, Body()] = Unarchival(),  # noqa: B008 (a constant default body)
        base: str = "",
    ) -> dict[str, Any]:
        obj = act(
            request,
            user,
            "review",
            lambda reg: reg.unarchive(check_ref(ref), kind, base or None, body.reason),
        )
        return _annotated(user, kind, obj)


for _collection, _kind in (("vectors", "vector"), ("recipes", "recipe")):
    _routes(_collection, _kind)

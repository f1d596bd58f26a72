"""The console's pages: catalogue, vector, recipe, review queue, audit log, lineage, sign-in.

Every page needs a signed-in account; every form carries the session's CSRF token; every
text is escaped by Jinja2's autoescape (names, reasons, YAML, lock contents alike).
"""

from __future__ import annotations

import asyncio
import math
import secrets
from datetime import datetime, timedelta
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from registry.console import actions, evidence, queries, render, sessions
from registry.console.accounts import User, by_password, by_token
from registry.console.actions import MAX_PAGE, check_ref
from registry.console.auth import (
    COOKIE,
    PRE_COOKIE,
    ApiError,
    registry,
    session_secret,
    session_user,
    uses_tls,
)
from registry.console.output_locks import output_lock
from registry.db.as_json import run_view
from registry.db.filters import Filter
from registry.evaluation.results_log import recorded_notes

router = APIRouter(include_in_schema=False)


class SignInNeeded(Exception):
    def __init__(self, path: str):
        self.path = path


def page(request: Request, name: str, user: User | None, code: int = 200, **ctx: Any) -> HTMLResponse:
    secret = session_secret(request)
    ctx.update(user=user, csrf=sessions.csrf_token(secret) if secret and user else "", request=request)
    return request.app.state.templates.TemplateResponse(request, name, ctx, status_code=code)


def signed_in(request: Request) -> User:
    user = session_user(request)
    if user is None:
        raise SignInNeeded(request.url.path)
    return user


def at(ref: str) -> str:
    """A reference as a URL path segment (names allow no character that needs quoting but `@`)."""
    return quote(ref, safe="@")


def safe_next(target: str | None) -> str:
    """Only paths on this site: no scheme, no host, no `//evil`."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def four_eyes(request: Request) -> bool:
    """Read per request (the team policy in the database), so a change applies without a restart."""
    return registry(request).policy().four_eyes


def may_approve(request: Request, user: User, created_by: str | None, status: str) -> bool:
    if not user.can("review") or status != "draft":
        return False
    return not (four_eyes(request) and created_by == user.name)


def _int(text: str | None, default: int = 1) -> int:
    """A page number from the query string: not a number is the default, beyond the range a 400."""
    try:
        n = max(1, int(text or default))
    except ValueError:  # also a number too long to convert
        return default
    if n > MAX_PAGE:
        raise ApiError(400, f"page number out of range: 1 to {MAX_PAGE}")
    return n


def _date(text: str | None, end: bool = False) -> datetime | None:
    """An ISO date or time (UTC); with `end`, a bare date means the end of that day."""
    try:
        t = datetime.fromisoformat(text) if text else None
    except ValueError:
        return None
    if t is not None and end and len(text or "") == 10:
        t += timedelta(days=1)
    return t.replace(tzinfo=None) if t else None


# -- signing in and out ------------------------------------------------------------------
@router.get("/login")
def login_form(request: Request, next: str = "/") -> Response:
    token = secrets.token_urlsafe(32)
    resp = page(request, "login.html", None, next=safe_next(next), signin_csrf=token, error=None)
    resp.set_cookie(
        PRE_COOKIE, token, httponly=True, samesite="strict", secure=uses_tls(request), path="/login"
    )
    return resp


@router.post("/login")
async def login(request: Request) -> Response:
    form = await request.form()
    reg = registry(request)
    nxt = safe_next(str(form.get("next") or "/"))
    given, expected = str(form.get("csrf") or ""), request.cookies.get(PRE_COOKIE) or ""
    if not expected or not secrets.compare_digest(given, expected):
        return page(request, "error.html", None, 403, message="sign-in form expired: reload the page")
    name, password, token = (str(form.get(k) or "") for k in ("name", "password", "token"))
    keys = [f"ip:{request.client.host if request.client else '?'}"] + ([f"name:{name[:128]}"] if name else [])
    try:  # counted before the wait, so guesses sent at once queue like guesses sent in turn
        wait = await run_in_threadpool(sessions.reserve, reg, keys, request.app.state.throttle)
    except sessions.Throttled as e:
        resp = page(
            request, "login.html", None, 429, next=nxt, signin_csrf=expected, error=f"sign-in refused: {e}"
        )
        resp.headers["Retry-After"] = str(math.ceil(e.retry_after))
        return resp
    if wait:
        await asyncio.sleep(wait)  # this request waits; other requests are served meanwhile
    if token:
        user = await run_in_threadpool(by_token, reg, token.strip())
    else:
        user = await run_in_threadpool(by_password, reg, name, password) if name else None
    if user is None:  # the attempt is already counted
        fresh = secrets.token_urlsafe(32)
        resp = page(
            request,
            "login.html",
            None,
            401,
            next=nxt,
            signin_csrf=fresh,
            error="sign-in failed: wrong name, password or token",
        )
        resp.set_cookie(
            PRE_COOKIE, fresh, httponly=True, samesite="strict", secure=uses_tls(request), path="/login"
        )
        return resp
    for k in keys:
        sessions.clear_failures(reg, k)
    secret = sessions.start(reg, user)
    resp = RedirectResponse(nxt, status_code=303)
    resp.set_cookie(
        COOKIE,
        secret,
        max_age=int(sessions.LIFETIME.total_seconds()),
        httponly=True,
        samesite="strict",
        secure=uses_tls(request),
        path="/",
    )
    resp.delete_cookie(PRE_COOKIE, path="/login")
    return resp


@router.post("/logout")
async def logout(request: Request) -> Response:
    form = await request.form()
    secret = session_secret(request)
    if not sessions.csrf_ok(secret, str(form.get("csrf") or "")):
        return page(request, "error.html", None, 403, message="missing or wrong CSRF token")
    sessions.end(registry(request), secret)
    resp = RedirectResponse("/login", status_code=303)
    resp.delete_cookie(COOKIE, path="/")
    return resp


# -- pages ------------------------------------------------------------------------------
@router.get("/")
def catalogue(
    request: Request,
    q: str = "",
    status: str = "",
    base: str = "",
    kind: str = "",
    page_no: str = "1",
    tag: Annotated[list[str], Query()] = [],  # noqa: B006 (FastAPI copies the default)
    archived: str = "hide",
) -> Response:
    user = signed_in(request)
    reg = registry(request)
    n = _int(page_no)
    show = kind if kind in {"bases", "vectors", "recipes"} else ""
    tags = [t for t in tag if t]
    pairs = [("q", q), ("status", status), ("base", base), ("kind", show), ("archived", archived)]
    f = Filter.parse(status, base, tags, q, archived)  # as `vector list` and REST; bad input: 400
    recipes = queries.recipes(reg, f, n) if show in {"", "recipes"} else None
    return page(
        request,
        "catalogue.html",
        user,
        q=q,
        status=status,
        base=base,
        kind=show,
        tag_list=tags,
        archived=f.archived,
        args=urlencode(pairs + [("tag", t) for t in tags]),
        page_no=n,
        bases=queries.bases(reg, q) if show in {"", "bases"} else [],
        base_names=queries.base_names(reg),
        vectors=queries.vectors(reg, f, n) if show in {"", "vectors"} else None,
        recipes=recipes,
        marks=queries.recipe_marks(reg, recipes.rows) if recipes else {},
        age=render.age,
    )


@router.get("/vectors/{ref}")
def vector_page(request: Request, ref: str, base: str = "", ok: str = "") -> Response:
    user = signed_in(request)
    reg = registry(request)
    v = reg.vector(check_ref(ref), base or None)
    layers, rows = render.interference_grid(v.interference or {})
    return page(
        request,
        "vector.html",
        user,
        v=v,
        run=run_view(v.run),
        layers=layers,
        cos_rows=rows,
        report=v.interference or {},
        consistency=queries.consistency_note(reg, v.ref),
        events=queries.lifecycle_events(reg, v.ref),
        can_approve=may_approve(request, user, v.created_by, v.status),
        own_draft=four_eyes(request) and v.created_by == user.name and v.status == "draft",
        can_deprecate=user.can("review") and v.status != "deprecated",
        heat=render.heat,
        age=render.age,
        ok=ok,
        base=base,
        **evidence.context(reg, "vector", v.ref, v.digest, v.base.digest),
    )


@router.get("/recipes/{ref}")
def recipe_page(request: Request, ref: str, against: str = "", ok: str = "") -> Response:
    user = signed_in(request)
    reg = registry(request)
    r = reg.recipe(check_ref(ref))
    versions = queries.recipe_versions(reg, r.name)
    other_v = _int(against.lstrip("v"), 0) if against else (r.version - 1 if r.version > 1 else 0)
    other = reg.recipe(f"{r.name}@v{other_v}") if other_v in versions and other_v != r.version else None
    mats = [(m, output_lock(m.out_path)) for m in reg.materializations(r.ref)]
    return page(
        request,
        "recipe.html",
        user,
        r=r,
        versions=versions,
        other=other,
        diff=render.diff(other, r) if other else [],
        yaml_text=render.recipe_text(r),
        mats=mats,
        notes=recorded_notes(reg, r.ref),
        aliases=queries.aliases_of(reg, r.name),
        events=queries.lifecycle_events(reg, r.ref),
        can_approve=may_approve(request, user, r.created_by, r.status),
        own_draft=four_eyes(request) and r.created_by == user.name and r.status == "draft",
        can_deprecate=user.can("review") and r.status != "deprecated",
        age=render.age,
        ok=ok,
        **evidence.context(reg, "recipe", r.ref, r.content_digest, r.base.digest),
    )


@router.get("/queue")
def queue(request: Request, page_no: str = "1", ok: str = "", done: str = "") -> Response:
    user = signed_in(request)
    reg = registry(request)
    vecs, recs = queries.drafts(reg, _int(page_no))
    fe = four_eyes(request)
    return page(
        request,
        "queue.html",
        user,
        vectors=vecs,
        vector_objs=dict(
            zip(
                [(v.name, v.version, v.base) for v in vecs.rows],
                queries.vector_objects(reg, vecs.rows),
                strict=True,
            )
        ),
        recipes=recs,
        marks=queries.recipe_marks(reg, recs.rows),
        evidenced=queries.evidenced(reg, vecs.rows, recs.rows),
        four_eyes=fe,
        reviewer=user.can("review"),
        page_no=_int(page_no),
        age=render.age,
        ok=ok if ok in {"approved", "deprecated"} else "",  # the confirmation after a decision here
        done=done,
    )


@router.get("/audit")
def audit(
    request: Request,
    actor: str = "",
    action: str = "",
    object: str = "",
    since: str = "",
    until: str = "",
    page_no: str = "1",
) -> Response:
    user = signed_in(request)
    p = queries.events(
        registry(request), actor, action, object, _date(since), _date(until, end=True), _int(page_no)
    )
    return page(
        request,
        "audit.html",
        user,
        events=p,
        actor=actor,
        action=action,
        obj=object,
        since=since,
        until=until,
    )


@router.get("/lineage/{ref}")
def lineage(request: Request, ref: str) -> Response:
    user = signed_in(request)
    tree = registry(request).lineage(check_ref(ref))
    return page(request, "lineage.html", user, ref=ref, tree=tree, graph=render.lineage_svg(tree))


# -- decisions (forms) -----------------------------------------------------------------------
async def _decide(request: Request, kind: str, ref: str, status: str) -> Response:
    user = signed_in(request)
    form = await request.form()
    if not sessions.csrf_ok(session_secret(request), str(form.get("csrf") or "")):
        return page(request, "error.html", user, 403, message="missing or wrong CSRF token")
    base = str(form.get("base") or "")
    try:
        reason = str(form.get("reason") or "")
        obj = await run_in_threadpool(actions.set_status, request, user, kind, ref, status, reason, base)
    except ApiError as e:
        return page(request, "error.html", user, e.status, message=e.message, back=f"/{kind}s/{at(ref)}")
    back = safe_next(str(form.get("next") or "")) if form.get("next") else f"/{kind}s/{at(obj.ref)}"
    sep = "&" if "?" in back else "?"
    if kind == "vector" and base and not form.get("next"):
        back += f"?base={at(base)}"
        sep = "&"
    done = f"&done={quote(obj.ref, safe='@')}" if form.get("next") else ""  # which row the queue confirms
    return RedirectResponse(f"{back}{sep}ok={status}{done}", status_code=303)


@router.post("/vectors/{ref}/approve")
async def approve_vector(request: Request, ref: str) -> Response:
    return await _decide(request, "vector", ref, "approved")


@router.post("/vectors/{ref}/deprecate")
async def deprecate_vector(request: Request, ref: str) -> Response:
    return await _decide(request, "vector", ref, "deprecated")


@router.post("/recipes/{ref}/approve")
async def approve_recipe(request: Request, ref: str) -> Response:
    return await _decide(request, "recipe", ref, "approved")


@router.post("/recipes/{ref}/deprecate")
async def deprecate_recipe(request: Request, ref: str) -> Response:
    return await _decide(request, "recipe", ref, "deprecated")


@router.post("/recipes/{ref}/alias")
async def alias(request: Request, ref: str) -> Response:
    user = signed_in(request)
    form = await request.form()
    if not sessions.csrf_ok(session_secret(request), str(form.get("csrf") or "")):
        return page(request, "error.html", user, 403, message="missing or wrong CSRF token")
    try:
        name, force = str(form.get("alias") or ""), form.get("force") == "on"
        r = await run_in_threadpool(actions.move_alias, request, user, ref, name, force)
    except ApiError as e:
        return page(request, "error.html", user, e.status, message=e.message, back=f"/recipes/{at(ref)}")
    return RedirectResponse(f"/recipes/{at(r.ref)}?ok=alias", status_code=303)

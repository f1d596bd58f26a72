"""The ASGI app of `registry serve`: pages, the REST API, static files, errors and security headers.

State lives in the database (accounts, sessions, sign-in failures, everything the registry
holds), so several processes over one PostgreSQL database serve the same console.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import jinja2
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException

from registry.api import Registry
from registry.console import api, api_writes, pages, render
from registry.console.actions import http_error
from registry.console.auth import ApiError
from registry.console.limits import BodyLimit
from registry.db.health import database_answers
from registry.errors import RegistryError

HERE = Path(__file__).parent
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; "
    "script-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def create_app(registry: Registry, secure_cookies: bool = False, throttle: float = 1.0) -> FastAPI:
    """The console over an open registry.

    `secure_cookies` marks cookies Secure even when requests arrive as plain HTTP (TLS ended at
    a proxy that does not forward the scheme); `throttle` is the first wait, in seconds, once
    sign-ins keep failing (it doubles with each further failure, up to 30 s).
    """
    app = FastAPI(
        title="registry review console",
        version="1",
        openapi_url="/api/v1/openapi.json",
        docs_url=None,
        redoc_url=None,
    )
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,  # every value is escaped unless a template says otherwise (none does)
        undefined=jinja2.StrictUndefined,
    )
    env.filters["at"] = pages.at  # references in paths keep their `@`
    env.globals.update(render=render, when=render.when)  # small formats every page may use
    app.state.registry = registry
    app.state.templates = Jinja2Templates(env=env)
    app.state.secure_cookies = secure_cookies
    app.state.throttle = throttle
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.include_router(api.router)
    app.include_router(api_writes.router)
    app.include_router(pages.router)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> Response:
        """For a load balancer: no sign-in, 200 when the database answers, else 503 and why."""
        problem = database_answers(registry.engine)
        if problem:
            return JSONResponse({"ok": False, "error": f"database does not answer: {problem}"}, 503)
        return JSONResponse({"ok": True})

    # bodies capped and authenticated before they are read; added first, so the headers wrap it
    app.add_middleware(BodyLimit)

    @app.middleware("http")
    async def headers(request: Request, call_next) -> Response:
        response = await call_next(request)
        for k, v in SECURITY_HEADERS.items():
            response.headers.setdefault(k, v)
        return response

    @app.exception_handler(ApiError)
    async def api_error(request: Request, e: ApiError) -> Response:
        if _is_api(request):
            headers = {"WWW-Authenticate": "Bearer"} if e.status == 401 else None
            return JSONResponse({"error": e.message}, e.status, headers=headers)
        return pages.page(request, "error.html", pages.session_user(request), e.status, message=e.message)

    @app.exception_handler(pages.SignInNeeded)
    async def sign_in(request: Request, e: pages.SignInNeeded) -> Response:
        return RedirectResponse(f"/login?next={quote(e.path)}", status_code=303)

    @app.exception_handler(RegistryError)
    async def registry_error(request: Request, e: RegistryError) -> Response:
        return await api_error(request, http_error(e))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, e: RequestValidationError) -> Response:
        first = e.errors()[0] if e.errors() else {}
        where = ".".join(str(x) for x in first.get("loc", ()) if x != "body")
        return await api_error(
            request, ApiError(422, f"invalid request: {where} {first.get('msg', '')}".strip())
        )

    @app.exception_handler(StarletteHTTPException)
    async def http(request: Request, e: StarletteHTTPException) -> Response:
        return await api_error(request, ApiError(e.status_code, str(e.detail)))

    @app.exception_handler(Exception)
    async def crashed(request: Request, e: Exception) -> Response:
        """Whatever was not foreseen still answers in one line (JSON or the error page), never as
        plain text or a traceback; the server logs the exception."""
        message = "internal error: the server could not answer this request"
        if _is_api(request):
            return JSONResponse({"error": message}, 500)
        return pages.page(request, "error.html", None, 500, message=message)

    return app

"""Request bodies: capped in size and, except the sign-in form, authenticated before a byte is read.

Without this, FastAPI reads a JSON body whole before its route's Bearer check runs, and the
form parser reads (and spools to /tmp) whatever a client uploads: a 300 MiB body without
credentials took serve to 1.18 GiB. Here a declared length over the cap is refused at once,
a request that is not signed in (session cookie) or authenticated (token) is refused before
its body is touched, and a body that streams past the cap stops the read where it crosses it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from fastapi import HTTPException, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from registry.console import accounts, pages, sessions
from registry.console.auth import COOKIE, PRE_COOKIE, registry

MAX_BODY = 64 * 1024  # a reason is at most 2,000 characters; every form and JSON body fits
NO_BODY = frozenset({"GET", "HEAD", "OPTIONS"})

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class BodyLimit:
    """ASGI middleware in front of every route (pure ASGI: it sees the body before anything reads it)."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], limit: int = MAX_BODY):
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        refusal = self._too_large(request)
        if refusal is None and scope["method"] not in NO_BODY:
            refusal = await self._unauthenticated(request)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        await self.app(scope, self._capped(receive), send)

    def _too_large(self, request: Request) -> Response | None:
        declared = request.headers.get("content-length")
        if declared is None:
            return None
        if not declared.isdigit() or len(declared) > 18:
            return _refuse(request, 400 if not declared.isdigit() else 413, _message(self.limit, declared))
        if int(declared) > self.limit:
            return _refuse(request, 413, _message(self.limit, declared))
        return None

    async def _unauthenticated(self, request: Request) -> Response | None:
        """Who sent a body, checked from headers alone: a token for the API, a session for pages;
        the sign-in form needs its own CSRF cookie (its body holds the credentials)."""
        path = request.url.path
        if path.startswith("/api/"):
            scheme, _, token = request.headers.get("authorization", "").partition(" ")
            known = scheme.lower() == "bearer" and token.strip()
            if (
                not known
                or await run_in_threadpool(accounts.by_token, registry(request), token.strip()) is None
            ):
                return _refuse(
                    request, 401, "missing or invalid bearer token: send Authorization: Bearer TOKEN"
                )
            return None
        if path == "/login":
            if not request.cookies.get(PRE_COOKIE):
                return _refuse(request, 403, "sign-in form expired: reload the page")
            return None
        secret = request.cookies.get(COOKIE)
        if not secret or await run_in_threadpool(sessions.lookup, registry(request), secret) is None:
            return RedirectResponse(f"/login?next={quote(path)}", status_code=303)
        return None

    def _capped(self, receive: Receive) -> Receive:
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:  # FastAPI re-raises its own HTTPException from a body read
                    raise HTTPException(413, _message(self.limit))
            return message

        return counted


def _message(limit: int, declared: str | None = None) -> str:
    said = f" (this one says {declared[:20]} bytes)" if declared else ""
    return f"request body too large: at most {limit // 1024} KiB{said}"


def _refuse(request: Request, status: int, message: str) -> Response:
    """The same answers the routes give: one line of JSON for the API, the error page otherwise."""
    if request.url.path.startswith("/api/"):
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return JSONResponse({"error": message}, status, headers=headers)
    return pages.page(request, "error.html", None, status, message=message)

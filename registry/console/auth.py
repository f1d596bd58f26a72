"""Who a request acts for: a Bearer token (REST) or a session cookie (pages), and CSRF checks.

Writes open the registry as that account (`actor_source="console"`) and go through the same
governance functions as the CLI; the console holds no rule of its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from fastapi import Request

from registry.api import Registry
from registry.console import accounts, sessions
from registry.console.accounts import User

COOKIE = "registry_session"
PRE_COOKIE = "registry_signin"  # double-submit CSRF token of the sign-in form, before a session exists


class ApiError(Exception):
    """An HTTP error whose body is one line of JSON: {"error": message}."""

    def __init__(self, status: int, message: str):
        self.status, self.message = status, message.splitlines()[0] if message else str(status)
        super().__init__(self.message)


def registry(request: Request) -> Registry:
    return request.app.state.registry


def bearer_user(request: Request) -> User:
    """The account of the request's `Authorization: Bearer TOKEN`; 401 without a valid one."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "missing bearer token: send Authorization: Bearer TOKEN")
    user = accounts.by_token(registry(request), token.strip())
    if user is None:
        raise ApiError(401, "invalid or revoked token")
    return user


def require(user: User, right: str) -> None:
    if not user.can(right):
        raise ApiError(403, f"{user.name} is a {user.role}: this needs the {right} right")


def session_secret(request: Request) -> str | None:
    return request.cookies.get(COOKIE)


def session_user(request: Request) -> User | None:
    return sessions.lookup(registry(request), session_secret(request))


def uses_tls(request: Request) -> bool:
    return request.url.scheme == "https" or request.app.state.secure_cookies


@contextmanager
def acting(request: Request, user: User) -> Iterator[Registry]:
    """The registry opened as `user` for one write: their name is the actor of every audit event."""
    reg = registry(request)
    acting_reg = Registry.open(reg.home, actor=user.name, actor_source="console")
    try:
        yield acting_reg
    finally:
        acting_reg.close()

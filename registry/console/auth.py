"""Who a request acts for: a Bearer token (REST) or a session cookie (pages), and CSRF checks.

Writes open the registry with a grant carrying the credential the request presented (its
token or session secret): the library looks the account up from it, so nothing but a request
that authenticated can act for an account. They go through the same governance functions as
the CLI; the console holds no rule of its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from fastapi import Request

from registry.api import Registry
from registry.console import accounts, sessions
from registry.console.accounts import User
from registry.db.console_grant import ConsoleGrant

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
    request.state.grant = ConsoleGrant("token", token.strip())
    return user


def require(user: User, right: str) -> None:
    if not user.can(right):
        raise ApiError(403, f"{user.name} is a {user.role}: this needs the {right} right")


def session_secret(request: Request) -> str | None:
    return request.cookies.get(COOKIE)


def session_user(request: Request) -> User | None:
    secret = session_secret(request)
    user = sessions.lookup(registry(request), secret)
    if user is not None and secret:
        request.state.grant = ConsoleGrant("session", secret)
    return user


def uses_tls(request: Request) -> bool:
    return request.url.scheme == "https" or request.app.state.secure_cookies


@contextmanager
def acting(request: Request, user: User) -> Iterator[Registry]:
    """The registry opened for one write as the account the request authenticated (its grant)."""
    grant = getattr(request.state, "grant", None)
    if grant is None:
        raise ApiError(401, "sign in first: this request carries no credential")
    acting_reg = Registry.open(registry(request).home, console=grant)
    if acting_reg.actor != user.name:  # the credential changed hands between the checks
        acting_reg.close()
        raise ApiError(401, "the credential no longer belongs to this account: sign in again")
    try:
        yield acting_reg
    finally:
        acting_reg.close()

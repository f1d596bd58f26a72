"""The console's writes, shared by the REST API and the pages: rights checked, then the library.

Each is one call into the same governance code the CLI uses (`set_status`, `set_alias`) with
the account as the actor; library errors become HTTP errors with a one-line message.
"""

from __future__ import annotations

from fastapi import Request

from registry.console.accounts import User
from registry.console.auth import ApiError, acting, require
from registry.db.models import Recipe, Vector
from registry.errors import (
    AlreadyExists,
    GovernanceRefused,
    InvalidName,
    InvalidTransition,
    NotApproved,
    NotFound,
    RegistryError,
)

MAX_REASON = 2000


def http_error(e: RegistryError) -> ApiError:
    """404 unknown, 409 rule or state conflict, 400 malformed input."""
    if isinstance(e, NotFound):
        return ApiError(404, str(e))
    if isinstance(e, GovernanceRefused | InvalidTransition | NotApproved | AlreadyExists):
        return ApiError(409, str(e))
    if isinstance(e, InvalidName):
        return ApiError(400, str(e))
    return ApiError(400, str(e))


def check_reason(reason: object) -> str:
    if not isinstance(reason, str) or not reason.strip():
        raise ApiError(422, "a reason is required")
    if len(reason) > MAX_REASON:
        raise ApiError(422, f"reason too long: at most {MAX_REASON} characters")
    return reason


def set_status(
    request: Request, user: User, kind: str, ref: str, status: str, reason: object, base: str | None = None
) -> Recipe | Vector:
    require(user, "review")
    reason = check_reason(reason)
    try:
        with acting(request, user) as reg:
            return reg.set_status(ref, status, reason, kind, base or None)
    except RegistryError as e:
        raise http_error(e) from None


def move_alias(request: Request, user: User, ref: str, alias: str, force: bool = False) -> Recipe:
    """Point NAME@ALIAS at `ref`; protected aliases and approval rules apply, `force` needs admin."""
    require(user, "admin" if force else "review")
    try:
        with acting(request, user) as reg:
            return reg.set_alias(ref, alias, force)
    except RegistryError as e:
        raise http_error(e) from None

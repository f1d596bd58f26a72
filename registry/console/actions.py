"""The console's writes, shared by the REST API and the pages: rights checked, then the library.

Each is one call into the same governance code the CLI uses (`set_status`, `set_alias`) with
the account as the actor; library errors become HTTP errors with a one-line message.
"""

from __future__ import annotations

import re

from fastapi import Request

from registry.console.accounts import User
from registry.console.auth import ApiError, acting, require
from registry.db.models import Recipe, Vector
from registry.errors import (
    AlreadyExists,
    GovernanceRefused,
    IdentityRefused,
    InvalidName,
    InvalidTransition,
    NotApproved,
    NotFound,
    RegistryError,
)

MAX_REASON = 2000
MAX_INT = 2**31 - 1  # versions and ids are database integers (32-bit on PostgreSQL)
MAX_PAGE = 1_000_000  # page numbers: far beyond any registry, far within what a database binds
_VERSION = re.compile(r"v([0-9]+)")


def http_error(e: RegistryError) -> ApiError:
    """404 unknown, 409 rule or state conflict, 401 a credential gone meanwhile, 400 malformed input."""
    if isinstance(e, IdentityRefused):
        return ApiError(401, str(e))
    if isinstance(e, NotFound):
        return ApiError(404, str(e))
    if isinstance(e, GovernanceRefused | InvalidTransition | NotApproved | AlreadyExists):
        return ApiError(409, str(e))
    if isinstance(e, InvalidName):
        return ApiError(400, str(e))
    return ApiError(400, str(e))


def check_ref(ref: str) -> str:
    """Refuse a version no database integer holds (`v99999999999999999999`) before the library
    binds it: the driver would fail with an overflow, a 500 instead of an answer."""
    tag = ref.partition("@")[2]
    m = _VERSION.fullmatch(tag)
    if m and (len(m.group(1)) > len(str(MAX_INT)) or int(m.group(1)) > MAX_INT):
        shown = ref if len(ref) <= 80 else ref[:77] + "..."
        raise ApiError(400, f"invalid reference {shown!r}: versions go up to v{MAX_INT}")
    return ref


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
    check_ref(ref)
    try:
        with acting(request, user) as reg:
            return reg.set_status(ref, status, reason, kind, base or None)
    except RegistryError as e:
        raise http_error(e) from None


def act(request: Request, user: User, right: str, fn, *args):
    """Call `fn(registry, *args)` on the registry opened as the request's account, after `right`."""
    require(user, right)
    try:
        with acting(request, user) as reg:
            return fn(reg, *args)
    except RegistryError as e:
        raise http_error(e) from None


def move_alias(request: Request, user: User, ref: str, alias: str, force: bool = False) -> Recipe:
    """Point NAME@ALIAS at `ref`; protected aliases and approval rules apply, `force` needs admin."""
    require(user, "admin" if force else "review")
    check_ref(ref)
    try:
        with acting(request, user) as reg:
            return reg.set_alias(ref, alias, force)
    except RegistryError as e:
        raise http_error(e) from None

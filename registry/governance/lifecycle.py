"""Governance: the draft → approved → deprecated lifecycle, its rules, and the audit log.

Rules: a recipe is approved only when all its vectors are; with `four_eyes` set, nobody
approves what they created themselves; protected aliases move only by their listed
approvers. Every refusal by a rule is written to the audit log before it is raised.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from sqlalchemy import select

from registry.db.models import AuditEvent, Recipe, Vector, utcnow
from registry.errors import GovernanceRefused, InvalidTransition
from registry.governance import signing
from registry.records.recipes import lookup_recipe
from registry.records.vectors import lookup_vector
from registry.util.refs import Ref

if TYPE_CHECKING:
    from registry.core import Core

TRANSITIONS: dict[str, set[str]] = {
    "draft": {"approved", "deprecated"},
    "approved": {"deprecated"},
}


def refuse(core: Core, action: str, obj: str, message: str, details: dict | None = None) -> NoReturn:
    """Record a governance refusal in the audit log (its own transaction), then raise it."""
    core.audit_now(f"refused.{action}", obj, {"reason": message, **(details or {})})
    raise GovernanceRefused(message)


def set_status(
    core: Core,
    ref: str,
    status: str,
    reason: str,
    kind: str = "recipe",
    base: str | None = None,
    sign_key: str | Path | None = None,
) -> Recipe | Vector:
    """Move a recipe or vector version along draft → approved → deprecated, with a reason.

    With `sign_key` (an elliptic-curve private key), an approval is also signed: the
    signature covers the digests and the status, and travels with bundles.
    """
    if not reason or not reason.strip():
        raise InvalidTransition(f"{status} needs a reason (--reason)")
    if kind not in {"recipe", "vector"}:
        raise InvalidTransition(f"kind must be recipe or vector, not {kind!r}")
    if sign_key is not None and status != "approved":
        raise InvalidTransition("only an approval can be signed (--sign-key)")
    parsed = Ref.parse(ref, f"{kind} reference")
    with core.Session() as s:
        obj = lookup_recipe(s, parsed) if kind == "recipe" else lookup_vector(s, parsed, base)
    if status == "approved":
        _check_approvable(core, kind, obj)
    signed = None
    if sign_key is not None:
        statement = (
            signing.recipe_statement(obj, status)
            if kind == "recipe"
            else signing.vector_statement(obj, status)
        )
        signed = (statement, *signing.sign_statement(core, statement, sign_key))

    def write() -> Recipe | Vector:
        with core.Session.begin() as s:
            row = s.get(Recipe if kind == "recipe" else Vector, obj.id)
            if status not in TRANSITIONS.get(row.status, set()):
                raise InvalidTransition(f"{kind} {row.ref} is {row.status}; it cannot become {status}")
            before = row.status
            row.status, row.status_reason, row.status_actor, row.status_at = (
                status,
                reason,
                core.actor,
                utcnow(),
            )
            details = {"reason": reason, "from": before}
            if signed:
                statement, bundle, kid = signed
                signing.record_signature(core, s, kind, row.id, kid, statement, bundle)
                details["signed_by"] = kid
            core.audit(s, f"{kind}.{status}", row.ref, details)
        with core.Session() as s:
            return (
                lookup_recipe(s, Ref(obj.name, obj.version))
                if kind == "recipe"
                else lookup_vector(s, Ref(obj.name, obj.version), base_id=obj.base_id)
            )

    return core.write(write)


def _check_approvable(core: Core, kind: str, obj: Recipe | Vector) -> None:
    if kind == "recipe":
        unapproved = [
            f"{t.vector.ref} ({t.vector.status})" for t in obj.terms if t.vector.status != "approved"
        ]
        if unapproved:
            refuse(
                core,
                "recipe.approved",
                obj.ref,
                f"recipe {obj.ref} uses vectors that are not approved: {', '.join(unapproved)} "
                "(approve them first: registry approve --vector NAME@vN)",
            )
    if core.config.governance.four_eyes and obj.created_by and obj.created_by == core.actor:
        refuse(
            core,
            f"{kind}.approved",
            obj.ref,
            f"four-eyes rule: {core.actor} created {kind} {obj.ref} and cannot also approve it",
            {"actor": core.actor},
        )


def audit_log(core: Core, obj: str | None = None, limit: int | None = None) -> list[AuditEvent]:
    """Events, oldest first; `obj` matches that exact object, or NAME@… for a bare NAME."""
    with core.Session() as s:
        q = select(AuditEvent).order_by(AuditEvent.id)
        if obj:
            q = q.where((AuditEvent.object == obj) | AuditEvent.object.startswith(f"{obj}@", autoescape=True))
        rows = list(s.scalars(q))
    return rows[-limit:] if limit else rows

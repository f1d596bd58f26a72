"""Governance: the draft → approved → deprecated lifecycle, and the audit log of every write."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import select

from registry.errors import InvalidTransition
from registry.models import AuditEvent, Recipe, Vector, utcnow
from registry.recipes import lookup_recipe
from registry.refs import Ref
from registry.vectors import lookup_vector

if TYPE_CHECKING:
    from registry.core import Core

TRANSITIONS: dict[str, set[str]] = {
    "draft": {"approved", "deprecated"},
    "approved": {"deprecated"},
}


def set_status(
    core: Core, ref: str, status: str, reason: str, kind: str = "recipe", base: str | None = None
) -> Recipe | Vector:
    """Move a recipe or vector version along draft → approved → deprecated, with a reason."""
    if not reason or not reason.strip():
        raise InvalidTransition(f"{status} needs a reason (--reason)")
    if kind not in {"recipe", "vector"}:
        raise InvalidTransition(f"kind must be recipe or vector, not {kind!r}")
    parsed = Ref.parse(ref, f"{kind} reference")

    def write() -> Recipe | Vector:
        with core.Session.begin() as s:
            obj = lookup_recipe(s, parsed) if kind == "recipe" else lookup_vector(s, parsed, base)
            if status not in TRANSITIONS.get(obj.status, set()):
                raise InvalidTransition(f"{kind} {obj.ref} is {obj.status}; it cannot become {status}")
            before = obj.status
            obj.status, obj.status_reason, obj.status_actor, obj.status_at = (
                status,
                reason,
                core.actor,
                utcnow(),
            )
            core.audit(s, f"{kind}.{status}", obj.ref, {"reason": reason, "from": before})
            return obj

    return core.write(write)


def audit_log(core: Core, obj: str | None = None, limit: int | None = None) -> list[AuditEvent]:
    with core.Session() as s:
        q = select(AuditEvent).order_by(AuditEvent.id)
        if obj:
            q = q.where((AuditEvent.object == obj) | AuditEvent.object.like(f"{obj}@%"))
        rows = list(s.scalars(q))
    return rows[-limit:] if limit else rows

"""Governance: the draft → approved → deprecated lifecycle, its rules, and the audit log.

Rules: a recipe is approved only when all its vectors are; with the team policy's
`approval_requires_evaluation`, only what has a recorded evaluation (governance.evidence);
with `four_eyes` set, nobody approves what they created themselves (and only an admin what
nobody knows the creator of); protected aliases move only by their listed approvers.
Every refusal by a rule is written to the audit log before it is raised. A status moves
by compare-and-set in one transaction, so two racing changes never both apply.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select, update

from registry.db import outbox
from registry.db.models import AuditEvent, Recipe, RecipeTerm, Vector, utcnow
from registry.errors import AlreadyExists, InvalidTransition
from registry.governance import signing
from registry.governance.authority import refuse
from registry.governance.evidence import check_evidence
from registry.records.recipes import lookup_recipe
from registry.records.vectors import lookup_vector
from registry.util.faults import pause
from registry.util.refs import Ref

if TYPE_CHECKING:
    from registry.core import Core

TRANSITIONS: dict[str, set[str]] = {
    "draft": {"approved", "deprecated"},
    "approved": {"deprecated"},
}


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
    if sign_key is not None and obj.status == "approved":
        flag = " --vector" if kind == "vector" else ""
        raise InvalidTransition(
            f"{kind} {obj.ref} is already approved: sign its approval with `registry sign {obj.ref}{flag} --key KEY`"
        )
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

    pause("lifecycle:before-write")  # drills hold the process here (signing can take a while)
    for _ in range(20):
        try:
            core.write(lambda: _compare_and_set(core, kind, obj, status, reason, signed))
            break
        except _Raced:  # another writer changed the status first: read it again and re-judge
            continue
        except _Unapproved as e:
            refuse(core, "recipe.approved", obj.ref, str(e))
    else:
        raise InvalidTransition(f"{kind} {obj.ref} kept changing while it was being {status}; try again")
    with core.Session() as s:
        return (
            lookup_recipe(s, Ref(obj.name, obj.version))
            if kind == "recipe"
            else lookup_vector(s, Ref(obj.name, obj.version), base_id=obj.base_id)
        )


class _Raced(Exception):
    """The status changed between reading it and writing it."""


class _Unapproved(Exception):
    """A recipe's vector is no longer approved when its approval is written."""


def _compare_and_set(
    core: Core, kind: str, obj: Recipe | Vector, status: str, reason: str, signed: tuple | None
) -> None:
    """One transaction: the status moves only from the value read in it (a conditional
    UPDATE, so a concurrent change makes it touch no row), and a recipe's vectors are
    re-read (locked against change on PostgreSQL) before its approval is written."""
    model = Recipe if kind == "recipe" else Vector
    with core.Session.begin() as s:
        before = s.scalar(select(model.status).where(model.id == obj.id))
        if status not in TRANSITIONS.get(before, set()):
            raise InvalidTransition(f"{kind} {obj.ref} is {before}; it cannot become {status}")
        pause("lifecycle:status-read")  # drills: another writer changes the status right here
        moved = s.execute(
            update(model)
            .where(model.id == obj.id, model.status == before)
            .values(status=status, status_reason=reason, status_actor=core.actor, status_at=utcnow())
            .execution_options(synchronize_session=False)
        ).rowcount
        if moved != 1:
            raise _Raced()
        if kind == "recipe" and status == "approved":
            # after the UPDATE: SQLite now holds the write lock, so no vector can change
            # until this commits; PostgreSQL's FOR SHARE waits out a concurrent deprecation
            terms = select(Vector).join(RecipeTerm, RecipeTerm.vector_id == Vector.id)
            rows = s.scalars(
                terms.where(RecipeTerm.recipe_id == obj.id)
                .order_by(RecipeTerm.position)
                .with_for_update(read=True)
                .execution_options(populate_existing=True)
            )
            unapproved = [f"{v.ref} ({v.status})" for v in rows if v.status != "approved"]
            if unapproved:
                raise _Unapproved(_unapproved_message(obj.ref, unapproved))
        details = {"reason": reason, "from": before}
        if signed:
            statement, bundle, kid = signed
            signing.record_signature(core, s, kind, obj.id, kid, statement, bundle)
            details["signed_by"] = kid
        core.audit(s, f"{kind}.{status}", obj.ref, details)
        outbox.emit_status(s, kind, obj.ref, before, status, reason, core.actor)


def sign_approval(
    core: Core, ref: str, key: str | Path, kind: str = "recipe", base: str | None = None
) -> tuple[Recipe | Vector, str]:
    """Sign the approval of a version that is already approved: (the version, the key id).

    The signer must be someone who could approve it (the same rules as `approve`: a recipe's
    vectors approved, four-eyes), so a signature never vouches more than an approval would.
    The signature covers the same statement as `approve --sign-key` and travels with bundles."""
    if kind not in {"recipe", "vector"}:
        raise InvalidTransition(f"kind must be recipe or vector, not {kind!r}")
    parsed = Ref.parse(ref, f"{kind} reference")
    with core.Session() as s:
        obj = lookup_recipe(s, parsed) if kind == "recipe" else lookup_vector(s, parsed, base)
    if obj.status != "approved":
        raise InvalidTransition(
            f"{kind} {obj.ref} is {obj.status}: only an approved version can be signed "
            "(approve it with --sign-key instead)"
        )
    _check_approvable(core, kind, obj)
    statement = (
        signing.recipe_statement(obj, "approved")
        if kind == "recipe"
        else signing.vector_statement(obj, "approved")
    )
    bundle, kid = signing.sign_statement(core, statement, key)
    model = Recipe if kind == "recipe" else Vector

    def write() -> None:
        with core.Session.begin() as s:
            now = s.scalar(select(model.status).where(model.id == obj.id))
            if now != "approved":
                raise InvalidTransition(f"{kind} {obj.ref} became {now} while it was being signed")
            if signing.signed_by(s, kind, obj.id, kid):
                raise AlreadyExists(f"{kind} {obj.ref} is already signed by key {kid[:16]}")
            signing.record_signature(core, s, kind, obj.id, kid, statement, bundle)
            core.audit(s, f"{kind}.signed", obj.ref, {"signed_by": kid, "status": "approved"})

    core.write(write)
    return obj, kid


def _unapproved_message(ref: str, unapproved: list[str]) -> str:
    return (
        f"recipe {ref} uses vectors that are not approved: {', '.join(unapproved)} "
        "(approve them first: registry approve --vector NAME@vN --reason TEXT)"
    )


def _check_approvable(core: Core, kind: str, obj: Recipe | Vector) -> None:
    if kind == "recipe":
        unapproved = [
            f"{t.vector.ref} ({t.vector.status})" for t in obj.terms if t.vector.status != "approved"
        ]
        if unapproved:
            refuse(core, "recipe.approved", obj.ref, _unapproved_message(obj.ref, unapproved))
    policy = core.policy()
    check_evidence(core, kind, obj, policy)
    if not policy.four_eyes:
        return
    if obj.created_by is None and core.actor not in policy.admins:
        # an unknown creator (a row from before creators were recorded) is not "anyone"
        refuse(
            core,
            f"{kind}.approved",
            obj.ref,
            f"four-eyes rule: nobody knows who created {kind} {obj.ref}; only a policy admin "
            f"({', '.join(policy.admins) or 'none set'}) may approve it",
            {"actor": core.actor},
        )
    if obj.created_by is not None and obj.created_by == core.actor:
        refuse(
            core,
            f"{kind}.approved",
            obj.ref,
            f"four-eyes rule: {core.actor} created {kind} {obj.ref} and cannot also approve it",
            {"actor": core.actor},
        )
    if obj.imported_by is not None and obj.imported_by == core.actor:  # a bundle's item: its importer
        refuse(
            core,
            f"{kind}.approved",
            obj.ref,
            f"four-eyes rule: {core.actor} imported {kind} {obj.ref} and cannot also approve it",
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

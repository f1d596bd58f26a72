"""The status an imported item lands with, and what a bundle may change of an item already here.

An `approved` status is kept only with a signature that a key trusted here verifies over
the statement rebuilt from the recomputed data (digest, base digest, status); a recipe
lands approved only if every one of its vectors is approved here after the import (a
signed recipe approval never lifts a vector that is deprecated, locally or at the source).
Deprecation travels: an item deprecated at the source becomes deprecated here even when it
is already present. An item already here as draft is upgraded to approved when a re-import
brings a signature that now verifies (after `registry trust add`). Every outcome is said
per item, with the reason. The keys that approvals and notes rest on are checked again
inside the import's write transaction, their rows locked (`recheck_keys`), so a key
revoked while an import runs never leaves its items approved.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update

from registry.db import outbox
from registry.db.models import Alias, Recipe, TrustedKey, Vector, utcnow
from registry.errors import IntegrityError, InvalidName
from registry.governance.revocation import IMPORTED_APPROVAL
from registry.governance.signing import list_trusted, record_signature, verified_by_trusted
from registry.records.vectors import get_vector
from registry.util.refs import check_alias

if TYPE_CHECKING:
    from registry.core import Core

STATUSES = {"draft", "approved", "deprecated"}


@dataclass
class Landing:
    """What happens to one bundle item: its status here, why, and with which key."""

    kind: str
    ref: str
    status: str
    outcome: str  # imported | already present | status upgraded | deprecated as at the source
    reason: str | None = None
    kid: str | None = None
    source_status: str | None = None

    def view(self) -> dict[str, Any]:
        out = {"kind": self.kind, "ref": self.ref, "outcome": self.outcome, "status": self.status}
        if self.reason:
            out["reason"] = self.reason
        return out


def claimed(entry: dict[str, Any], what: str) -> str:
    status = entry.get("status")
    if status not in STATUSES:
        raise IntegrityError(f"bundle {what}: unknown status {str(status)[:40]!r}")
    return status


def approval(
    core: Core, statement_for: Callable[[str], dict], signatures: Any
) -> tuple[str | None, str | None]:
    """(key id, None) when a trusted key verifies the approval, else (None, why not)."""
    sigs = [x for x in signatures if isinstance(x, dict)] if isinstance(signatures, list) else []
    if not sigs:
        return None, "the bundle said approved, but it carries no signature"
    trusted = {k.key_id for k in list_trusted(core)}
    if not any(x.get("key_id") in trusted for x in sigs):
        return None, "the bundle said approved, but its signer is not trusted here (registry trust add KEY)"
    kid = verified_by_trusted(core, statement_for("approved"), sigs)
    if kid:
        return kid, None
    return None, "the bundle said approved, but no signature verified against a trusted key"


def land_new(core: Core, kind: str, ref: str, status: str, statement_for, signatures) -> Landing:
    if status != "approved":
        return Landing(kind, ref, status, "imported")
    kid, why = approval(core, statement_for, signatures)
    if kid:
        return Landing(kind, ref, "approved", "imported", f"{IMPORTED_APPROVAL}{kid[:16]}", kid)
    return Landing(kind, ref, "draft", "imported", f"imported as draft: {why}", source_status="approved")


def land_existing(
    core: Core, kind: str, ref: str, here: str, status: str, statement_for, signatures
) -> Landing:
    """An identical item already here: deprecation travels; a newly verifiable approval upgrades."""
    if status == "deprecated" and here != "deprecated":
        return Landing(kind, ref, "deprecated", "deprecated as at the source", "deprecated at the source")
    if status == "approved" and here == "draft":
        kid, why = approval(core, statement_for, signatures)
        if kid:
            return Landing(kind, ref, "approved", "status upgraded", f"{IMPORTED_APPROVAL}{kid[:16]}", kid)
        return Landing(kind, ref, here, "already present", f"stays draft: {why}")
    return Landing(kind, ref, here, "already present")


def hold_back(landing: Landing, why: str) -> Landing:
    """A recipe approval that must not land: draft (new) or unchanged (already here)."""
    if landing.status != "approved":
        return landing
    if landing.outcome == "status upgraded":
        return Landing(landing.kind, landing.ref, "draft", "already present", f"stays draft: {why}")
    return Landing(landing.kind, landing.ref, "draft", landing.outcome, f"imported as draft: {why}",
                   source_status="approved")  # fmt: skip


def apply_existing(core: Core, s, landing: Landing, object_id: int, entry: dict, bundle: str) -> None:
    """Change an existing row's status (compare-and-set under a row lock), audited."""
    model = Recipe if landing.kind == "recipe" else Vector
    row = s.scalar(select(model).where(model.id == object_id).with_for_update())
    allowed = {"deprecated": {"draft", "approved"}, "approved": {"draft"}}[landing.status]
    if row.status not in allowed:
        landing.outcome, landing.status, landing.reason = "already present", row.status, None
        return
    before = row.status
    row.status, row.status_reason, row.status_actor, row.status_at = (
        landing.status, landing.reason, core.actor, utcnow(),
    )  # fmt: skip
    details: dict[str, Any] = {"from": before, "bundle": bundle, "reason": landing.reason}
    if landing.kid:
        keep_signatures(core, s, landing.kind, row.id, landing.kid, entry)
        details["signed_by"] = landing.kid
    core.audit(s, f"{landing.kind}.{landing.status}", landing.ref, details)
    outbox.emit_status(s, landing.kind, landing.ref, before, landing.status, landing.reason, core.actor)


def keep_signatures(core: Core, s, kind: str, row_id: int, kid: str | None, entry: dict) -> None:
    """Record the entry's signatures made with the key that verified its approval."""
    for sig in entry.get("signatures") or []:
        if isinstance(sig, dict) and sig.get("key_id") == kid and isinstance(sig.get("bundle"), str):
            statement = sig.get("statement") if isinstance(sig.get("statement"), dict) else {}
            record_signature(core, s, kind, row_id, kid, statement, sig["bundle"])


def vouch(vectors: list, recipes: list) -> None:
    """A verified recipe approval vouches for the digests of the vectors it names (those the
    bundle calls approved)."""
    covered = {}
    for rc, _params, terms, landing, _id in recipes:
        if landing.kid and landing.status == "approved":
            covered.update({(rc["base"], v.ref): (landing.kid, landing.ref) for v, _w in terms})
    for e, landing, _key, _fields, existing_id in vectors:
        k = (e["base"], landing.ref)
        if e["status"] == "approved" and landing.status == "draft" and k in covered:
            kid, rref = covered[k]
            landing.status, landing.kid, landing.source_status = "approved", kid, None
            landing.reason = f"{IMPORTED_APPROVAL}{kid[:16]} (recipe {rref}'s signature covers its digest)"
            landing.outcome = "status upgraded" if existing_id is not None else "imported"


def hold(core: Core, vectors: list, recipes: list) -> None:
    """A recipe stays approved only if all its vectors are approved here after the import."""
    final = {(e["base"], landing.ref): landing.status for e, landing, *_ in vectors}
    for i, (rc, params, terms, landing, existing_id) in enumerate(recipes):
        if landing.status != "approved" or (existing_id is not None and landing.outcome == "already present"):
            continue
        bad = []
        for v, _w in terms:
            st = final.get((rc["base"], v.ref)) or get_vector(core, v.ref, rc["base"]).status
            if st != "approved":
                bad.append(f"{v.ref} ({st})")
        if bad:
            why = f"its vectors are not all approved here: {', '.join(bad)}"
            recipes[i] = (rc, params, terms, hold_back(landing, why), existing_id)


def _still_trusted(s, kids: set[str]) -> set[str]:
    """Of `kids`, the keys trusted now, their rows locked until this transaction ends.

    PostgreSQL: `SELECT … FOR UPDATE` on the trusted_keys rows, which `trust remove` locks the
    same way before it deletes one (so either it waits for this import and then demotes what
    it wrote, or this import waits for it and finds the key gone). SQLite has no row locks: a
    no-op UPDATE takes the database's write lock first, so no `trust remove` can commit
    between this read and this transaction's commit."""
    if not kids:
        return set()
    rows = TrustedKey.key_id.in_(sorted(kids))
    if s.get_bind().dialect.name == "sqlite":
        s.execute(update(TrustedKey).where(rows).values(name=TrustedKey.name))
    return set(s.scalars(select(TrustedKey.key_id).where(rows).order_by(TrustedKey.key_id).with_for_update()))


def recheck_keys(core: Core, s, vectors: list, recipes: list) -> None:
    """Inside the write transaction: an approval or notes whose key was revoked since the
    signatures were checked land as if the key had never been trusted."""
    kids = {x[1].kid for x in vectors if x[1].kid} | {x[3].kid for x in recipes if x[3].kid}
    kids |= {rc["notes_kid"] for rc, *_ in recipes if rc.get("notes_kid")}
    trusted = _still_trusted(s, kids)
    for rc, *_ in recipes:
        if rc.get("notes_kid") and rc["notes_kid"] not in trusted:
            rc["notes_why"] = f"key {rc['notes_kid'][:16]} was revoked during the import"
            rc["notes_kid"] = None
    gone = kids - trusted
    if not gone:
        return
    for i, (e, landing, *rest) in enumerate(vectors):
        if landing.kid in gone:
            vectors[i] = (
                e,
                hold_back(landing, f"key {landing.kid[:16]} was revoked during the import"),
                *rest,
            )
    for i, (rc, params, terms, landing, existing_id) in enumerate(recipes):
        if landing.kid in gone:
            landing = hold_back(landing, f"key {landing.kid[:16]} was revoked during the import")
            recipes[i] = (rc, params, terms, landing, existing_id)
    hold(core, vectors, recipes)


# -- aliases --------------------------------------------------------------------------------
def checked_aliases(rc: dict[str, Any], ref: str) -> list[str]:
    """The aliases a bundle recipe entry brings (exported only with a signed approval)."""
    raw = rc.get("aliases", [])
    if not isinstance(raw, list) or len(raw) > 100:
        raise IntegrityError(f"bundle recipe {ref}: aliases must be a short list of names")
    try:
        return [check_alias(a) if isinstance(a, str) else check_alias(str(a)[:40] + "?") for a in raw]
    except InvalidName as e:
        raise IntegrityError(f"bundle recipe {ref}: {e}") from None


def land_aliases(
    core: Core, s, rc: dict, landing: Landing, recipe_id: int, protected: dict[str, list[str]], bundle: str
) -> tuple[list[str], list[str]]:
    """Recreate the source's aliases of a recipe that is approved here (its approval signed and
    verified, or approved already): (created, skipped with why). An alias that exists here is
    never moved, and a protected one is created only by one of its approvers."""
    created, skipped = [], []
    for alias in rc.get("aliases") or []:
        name = f"{rc['name']}@{alias}"
        if landing.status != "approved":
            skipped.append(f"{name}: {landing.ref} is {landing.status} here")
            continue
        approvers = protected.get(alias)
        if approvers is not None and core.actor not in approvers:
            skipped.append(
                f"{name}: alias {alias} is protected here (only {', '.join(approvers) or 'nobody'})"
            )
            continue
        a = s.scalar(select(Alias).where(Alias.recipe_name == rc["name"], Alias.alias == alias))
        if a is not None:
            if a.recipe_id != recipe_id:
                skipped.append(f"{name}: exists here at another version, left as it is")
            continue
        s.add(Alias(recipe_name=rc["name"], alias=alias, recipe_id=recipe_id))
        core.audit(
            s, "recipe.alias", name, {"to": landing.ref, "from": None, "forced": False, "bundle": bundle}
        )
        created.append(name)
    return created, skipped

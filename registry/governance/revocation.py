"""Revoking a trusted key (`registry trust remove`): its signatures stop counting, at once.

The key's row moves from trusted_keys to revoked_keys (so no client, whatever its schema,
trusts it any more), and every approval that rested on it alone, i.e. an imported approval
whose only ground was that key's signature, falls back to draft, audited. Approvals made
here by a local reviewer stand: they never depended on the key. A revoked key cannot be
trusted again (make a new key pair).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from registry.db import outbox
from registry.db.models import Recipe, RevokedKey, TrustedKey, Vector, utcnow
from registry.errors import NotFound, NotTrusted
from registry.governance.authority import require_admin
from registry.governance.signing import key_id, public_pem

if TYPE_CHECKING:
    from registry.core import Core

# how an import records an approval that rests on a signature (see exchange.landing)
IMPORTED_APPROVAL = "imported approved, signature by key "


def _resolve(core: Core, key: str) -> TrustedKey:
    """A trusted key by id, unique id prefix (8+ hex digits), name, or key file."""
    with core.Session() as s:
        rows = list(s.scalars(select(TrustedKey)))
        revoked = {r.key_id: r for r in s.scalars(select(RevokedKey))}
    if Path(key).is_file():
        try:
            kid = key_id(public_pem(key))
        except (NotTrusted, OSError) as e:
            raise NotTrusted(f"{key}: {e}") from None
        found = [r for r in rows if r.key_id == kid]
    else:
        found = [r for r in rows if r.name == key] or (
            [r for r in rows if r.key_id.startswith(key.lower())] if len(key) >= 8 else []
        )
        kid = key.lower()
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        raise NotFound("trusted key", key, f"{len(found)} keys match; give more of the key id")
    hit = next((r for k, r in revoked.items() if k.startswith(kid) and len(kid) >= 8), None)
    if hit is not None:
        raise NotFound("trusted key", key, f"key {hit.key_id[:16]} was already revoked by {hit.revoked_by}")
    raise NotFound("trusted key", key, "see `registry trust list`")


def remove_trusted(core: Core, key: str, reason: str | None = None) -> dict[str, Any]:
    """Revoke a trusted key; returns its id and the approvals that fell back to draft.

    A policy admin's act: a revoked key is never trusted again, and its approvals fall back.
    """
    target = _resolve(core, key)
    kid = target.key_id
    require_admin(core, "trust.remove", f"key:{kid[:16]}", "revoke a trusted key")

    def write() -> dict[str, Any]:
        demoted: list[str] = []
        with core.Session.begin() as s:
            row = s.scalar(select(TrustedKey).where(TrustedKey.key_id == kid).with_for_update())
            if row is None:
                raise NotFound("trusted key", key, "it was removed meanwhile")
            s.add(
                RevokedKey(
                    key_id=row.key_id, name=row.name, pem=row.pem, added_by=row.added_by,
                    added_at=row.added_at, revoked_by=core.actor, revoked_at=utcnow(), reason=reason,
                )
            )  # fmt: skip
            s.delete(row)
            # approvals that rest on the key: imported with its signature, or vouched for by a
            # recipe signature of it (both recorded with this reason prefix)
            for kind, model in (("recipe", Recipe), ("vector", Vector)):
                rested = select(model).where(
                    model.status == "approved", model.status_reason.startswith(IMPORTED_APPROVAL + kid[:16])
                )
                for obj in s.scalars(rested.order_by(model.id).with_for_update()):
                    obj.status, obj.status_actor, obj.status_at = "draft", core.actor, utcnow()
                    obj.status_reason = f"approval rested on key {kid[:16]}, revoked by {core.actor}"
                    core.audit(s, f"{kind}.approval-revoked", obj.ref, {"from": "approved", "key_id": kid})
                    outbox.emit_status(s, kind, obj.ref, "approved", "draft", obj.status_reason, core.actor)
                    demoted.append(f"{kind} {obj.ref}")
            core.audit(
                s, "trust.remove", f"key:{kid[:16]}", {"key_id": kid, "reason": reason, "demoted": demoted}
            )
        return {"key_id": kid, "name": target.name, "demoted": demoted}

    return core.write(write)


def list_revoked(core: Core) -> list[RevokedKey]:
    with core.Session() as s:
        return list(s.scalars(select(RevokedKey).order_by(RevokedKey.revoked_at)))


def revoked_ids(core: Core) -> set[str]:
    with core.Session() as s:
        return set(s.scalars(select(RevokedKey.key_id)))

"""A recipe's tune and retention records in bundles: exported with it, checked, re-recorded.

They are audit events (`recipe.tune`, `recipe.retention`) of exactly that recipe version,
so they travel as such: action, details, and who recorded them when. On import each lands
as the same event with the same details (an output's card and lock read them, and must
come out alike in both registries) plus one `recipe.import-notes` event saying where they
came from. A note already recorded here with the same details is not recorded twice.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.db.models import AuditEvent
from registry.errors import IntegrityError
from registry.evaluation.results_log import ACTIONS

if TYPE_CHECKING:
    from registry.core import Core

MAX_NOTES = 1000  # per recipe: a tune search records one, each gated materialize one
MAX_BYTES = 64 * 1024  # per note's details


def _t(x) -> str | None:
    return x.isoformat(timespec="seconds") + "Z" if x else None


def export_notes(core: Core, refs: list[str]) -> dict[str, list[dict[str, Any]]]:
    """recipe ref -> its tune and retention records, oldest first."""
    if not refs:
        return {}
    with core.Session() as s:
        q = (
            select(AuditEvent)
            .where(AuditEvent.object.in_(refs), AuditEvent.action.in_(ACTIONS))
            .order_by(AuditEvent.id)
        )
        out: dict[str, list[dict[str, Any]]] = {ref: [] for ref in refs}
        for e in s.scalars(q):
            out[e.object].append({"action": e.action, "details": e.details, "actor": e.actor, "at": _t(e.at)})
        return out


def checked_notes(entry: dict[str, Any], ref: str) -> list[dict[str, Any]]:
    """A bundle recipe's notes, validated as untrusted input (absent in older bundles)."""
    notes = entry.get("notes", [])
    if not isinstance(notes, list) or len(notes) > MAX_NOTES:
        raise IntegrityError(f"bundle recipe {ref}: notes must be a list of at most {MAX_NOTES}")
    out = []
    for n in notes:
        if (
            not isinstance(n, dict)
            or n.get("action") not in ACTIONS
            or not isinstance(n.get("details"), dict)
        ):
            raise IntegrityError(f"bundle recipe {ref}: a note is not a tune or retention record")
        try:
            size = len(json.dumps(n["details"], allow_nan=False, sort_keys=True))
        except (TypeError, ValueError) as e:
            raise IntegrityError(
                f"bundle recipe {ref}: a {n['action']} note is not plain JSON ({e})"
            ) from None
        if size > MAX_BYTES:
            raise IntegrityError(f"bundle recipe {ref}: a {n['action']} note exceeds {MAX_BYTES} bytes")
        out.append(
            {
                "action": n["action"],
                "details": n["details"],
                "actor": str(n.get("actor"))[:128],
                "at": str(n.get("at"))[:40],
            }
        )
    return out


def record_notes(core: Core, s: Session, ref: str, notes: list[dict[str, Any]], bundle: str) -> int:
    """Record the notes not already here for `ref` (same action and details); returns how many."""
    if not notes:
        return 0
    here = {
        (e.action, json.dumps(e.details, sort_keys=True))
        for e in s.scalars(select(AuditEvent).where(AuditEvent.object == ref, AuditEvent.action.in_(ACTIONS)))
    }
    added = []
    for n in notes:
        key = (n["action"], json.dumps(n["details"], sort_keys=True))
        if key in here:
            continue
        here.add(key)
        core.audit(s, n["action"], ref, n["details"])
        added.append({"action": n["action"], "source_actor": n["actor"], "source_at": n["at"]})
    if added:
        core.audit(s, "recipe.import-notes", ref, {"bundle": bundle, "notes": added})
    return len(added)

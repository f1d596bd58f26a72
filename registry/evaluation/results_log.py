"""Measurements recorded with a recipe version (a tune search, retention checks), from the audit log.

They travel into its outputs: the card's metadata and body, and the lock's `notes`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from registry.db.as_json import NOTE_ACTIONS
from registry.db.models import AuditEvent
from registry.evaluation.retention import gate

if TYPE_CHECKING:
    from registry.core import Core
    from registry.db.models import Recipe

ACTIONS = NOTE_ACTIONS  # the fast `recipe show` (db.listings) reads the same list


def recorded_notes(core: Core, ref: str) -> dict[str, Any]:
    """The newest note of each kind recorded for exactly this recipe version."""
    from sqlalchemy import select

    with core.Session() as s:
        q = (
            select(AuditEvent)
            .where(AuditEvent.object == ref, AuditEvent.action.in_(ACTIONS))
            .order_by(AuditEvent.id)
        )
        return {ACTIONS[e.action]: dict(e.details) for e in s.scalars(q)}


def output_notes(core: Core, r: Recipe, max_ppl_drift: float | None = None) -> dict[str, Any]:
    """What a new output of `r` records: its tune search, and (when gated) the retention check."""
    notes = {k: v for k, v in recorded_notes(core, r.ref).items() if k == "tune"}
    if max_ppl_drift is not None:
        notes["retention"] = gate(core, r, max_ppl_drift)
    return notes

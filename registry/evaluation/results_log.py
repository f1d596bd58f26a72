"""Measurements recorded with a recipe version (a tune search, retention checks, recorded
evaluations of its exact digest), from the audit log and the evaluations table.

They travel into its outputs: the card's metadata and body, and the lock's `notes`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from registry.db.as_json import NOTE_ACTIONS
from registry.db.models import AuditEvent
from registry.evaluation.retention import gate
from registry.records.evaluations import evaluations_for

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
    evaluations = evaluation_notes(core, r)
    if evaluations:
        notes["evaluations"] = evaluations
    if max_ppl_drift is not None:
        notes["retention"] = gate(core, r, max_ppl_drift)
    return notes


CARD_EVALUATIONS = 3  # the newest evaluations an output's card and lock carry


def evaluation_notes(core: Core, r: Recipe) -> list[dict[str, Any]]:
    """The newest recorded evaluations of exactly this recipe digest on its base that count as
    evidence (recorded here, or imported under a trusted signature), without sample answers."""
    with core.Session() as s:
        found = [
            e for e in evaluations_for(s, "recipe", r.content_digest, r.base.digest) if e.counts_as_evidence
        ]
    return [
        {
            "id": e.id,
            "digest": e.digest,
            "prompts_source": e.prompts_source,
            "prompts_digest": e.prompts_digest,
            "seed": e.seed,
            "max_new_tokens": e.decoding.get("max_new_tokens"),
            "evaluators": e.evaluators,
            "created_by": e.created_by,
            "created_at": e.created_at.replace(tzinfo=None).isoformat(timespec="seconds") + "Z",
            "subject_point": e.details.get("subject_point"),
            "points": [{"etas": p.etas, "metrics": p.metrics} for p in e.points],
        }
        for e in found[:CARD_EVALUATIONS]
    ]

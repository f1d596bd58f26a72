"""Approval on evidence: with the team policy's `approval_requires_evaluation`, a vector or
recipe is approved only when its exact digest has a recorded evaluation on its base.

`approval_max_ppl_drift` (percent) then also bounds the perplexity drift that evaluation
measured at the subject itself (a vector at η = 1, a recipe at its own weights; the worst
point of the grid when the grid does not hold that point). Every approval path (CLI,
library, console, REST) goes through `lifecycle.set_status`, which calls this; a refusal
is audited like every governance refusal.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from registry.db.policy import TeamPolicy
from registry.errors import IntegrityError
from registry.governance.authority import refuse
from registry.records.evaluations import EvaluationRecord, evaluations_for, verify_record

if TYPE_CHECKING:
    from registry.core import Core
    from registry.db.models import Recipe, Vector


def subject_drift(e: EvaluationRecord) -> float | None:
    """The drift an evaluation shows for its subject (None: it measured none)."""
    own = e.subject_metrics()
    if own is not None and own.get("ppl_drift") is not None:
        return own["ppl_drift"]
    return e.worst("ppl_drift")


def sound(found: list[EvaluationRecord]) -> list[EvaluationRecord]:
    """The records that count as evidence: recorded here (or imported under a trusted
    signature), and still matching their digests."""
    out = []
    for e in found:
        if not e.counts_as_evidence:
            continue
        try:
            verify_record(e)
        except IntegrityError:
            continue
        out.append(e)
    return out


def check_evidence(core: Core, kind: str, obj: Recipe | Vector, policy: TeamPolicy) -> None:
    if not policy.approval_requires_evaluation:
        return
    digest = obj.content_digest if kind == "recipe" else obj.digest
    with core.Session() as s:
        found = sound(evaluations_for(s, kind, digest, obj.base.digest))
    action = f"{kind}.approved"
    if not found:
        refuse(
            core,
            action,
            obj.ref,
            f"team policy approval_requires_evaluation: {kind} {obj.ref} ({digest[:12]}) has no recorded "
            f"evaluation on base {obj.base.name}; record one first: registry sweep {obj.ref} --record",
            {"digest": digest},
        )
    limit = policy.approval_max_ppl_drift
    if limit is None:
        return
    drifts = [(e, subject_drift(e)) for e in found]
    if any(d is not None and d <= limit for _e, d in drifts):
        return
    newest, drift = drifts[0]
    shown = "no perplexity drift" if drift is None else f"perplexity drift {drift:+.2f}%"
    refuse(
        core,
        action,
        obj.ref,
        f"team policy approval_max_ppl_drift {limit:g}%: the evaluations of {kind} {obj.ref} "
        f"(newest: {newest.id}) show {shown}, none within the limit",
        {"digest": digest, "evaluation": newest.id, "ppl_drift": drift, "limit": limit},
    )

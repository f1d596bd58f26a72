"""Recorded evaluations in bundles: exported with their vector or recipe, checked, re-recorded.

Each vector and recipe entry carries the evaluations of its exact digest (their JSON form
with their content digest). On import every record must still give its digest (a changed
metric, answer or prompt refuses the whole import, nothing written) and must be of that
entry's digest on that base. With `export --sign-key` one signature covers the entry's
digest and every evaluation digest; an evaluation lands signed only when a key trusted
here verifies it, and only then counts as evidence for `approval_requires_evaluation`
(an unsigned one is kept and shown, marked imported, but approves nothing).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.db import outbox
from registry.db.models import Evaluation
from registry.errors import IntegrityError, RegistryError
from registry.governance.signing import sign_statement, statement, verified_by_trusted
from registry.records.evaluations import (
    content,
    draft,
    evaluation_event,
    evaluations_for,
    from_content,
    record_evaluation,
)
from registry.util.digests import content_digest

if TYPE_CHECKING:
    from registry.core import Core

MAX_EVALUATIONS = 200  # per vector or recipe


def export_evaluations(core: Core, kind: str, digest: str, base_digest: str) -> list[dict[str, Any]]:
    """The evaluations of that digest on that base, oldest first, as bundles carry them."""
    with core.Session() as s:
        found = evaluations_for(s, kind, digest, base_digest)
    return [{**content(e), "digest": e.digest} for e in reversed(found)]


def evaluations_statement(kind: str, entry: dict[str, Any], digest: str, evaluations: list[dict]) -> dict:
    """What an evaluations signature covers: the subject's digest and every evaluation digest."""
    listed = content_digest({"evaluations": [str(e.get("digest")) for e in evaluations]})
    return statement(
        f"{kind}-evaluations",
        str(entry["name"]),
        int(entry["version"]),
        listed,
        "recorded",
        subject_digest=digest,
    )


def sign_evaluations(core: Core, kind: str, entry: dict[str, Any], digest: str, key: str) -> list[dict]:
    """`export --sign-key`: one signature over the entry's evaluations (none without any)."""
    evaluations = entry.get("evaluations") or []
    if not evaluations:
        return []
    text, kid = sign_statement(core, evaluations_statement(kind, entry, digest, evaluations), key)
    return [{"key_id": kid, "bundle": text}]


def checked_evaluations(
    core: Core, kind: str, entry: dict[str, Any], ref: str, digest: str, base_digest: str
) -> dict[str, Any]:
    """The entry's evaluations, each re-checked against its digest and subject (untrusted input),
    and the trusted key that signed them (None: unsigned or not trusted here)."""
    docs = entry.get("evaluations", [])
    if (
        not isinstance(docs, list)
        or len(docs) > MAX_EVALUATIONS
        or not all(isinstance(d, dict) for d in docs)
    ):
        raise IntegrityError(f"bundle {kind} {ref}: evaluations must be a list of at most {MAX_EVALUATIONS}")
    records = []
    for i, doc in enumerate(docs, 1):
        try:
            rec = draft(**from_content(doc), digest=str(doc.get("digest")))
        except IntegrityError:
            raise IntegrityError(
                f"bundle {kind} {ref}: evaluation {i} does not match its digest (changed after it was recorded)"
            ) from None
        except (RegistryError, KeyError, TypeError, ValueError, AttributeError) as e:
            raise IntegrityError(
                f"bundle {kind} {ref}: evaluation {i} is malformed ({str(e)[:120]})"
            ) from None
        if (rec.subject_kind, rec.subject_digest, rec.base_digest) != (kind, digest, base_digest):
            raise IntegrityError(f"bundle {kind} {ref}: evaluation {i} is of another digest or base")
        records.append(rec)
    sigs = entry.get("evaluations_signatures")
    sigs = [x for x in sigs if isinstance(x, dict)] if isinstance(sigs, list) else []
    kid = None
    if records and sigs:
        kid = verified_by_trusted(core, evaluations_statement(kind, entry, digest, docs), sigs)
    return {"records": records, "signed_by": kid}


def record_imported(core: Core, s: Session, checked: dict[str, Any] | None, bundle: str) -> int:
    """Record the checked evaluations not already here (same digest); returns how many."""
    if not checked:
        return 0
    added = 0
    for rec in checked["records"]:
        if s.scalar(select(Evaluation.id).where(Evaluation.digest == rec.digest)) is not None:
            continue
        fields = {k: getattr(rec, k) for k in content(rec) if k != "schema"}
        new = record_evaluation(
            s, **fields, imported_by=core.actor, signed_by=checked["signed_by"], digest=rec.digest
        )
        core.audit(
            s,
            "evaluation.imported",
            new.subject_ref,
            {"evaluation": new.id, "digest": new.digest, "bundle": bundle, "signed_by": new.signed_by},
        )
        outbox.emit(s, "evaluation.recorded", new.subject_ref, evaluation_event(new), core.actor)
        added += 1
    return added

"""A recipe's tune and retention records in bundles: exported with it, checked, re-recorded.

They are audit events (`recipe.tune`, `recipe.retention`) of exactly that recipe version,
so they travel as such: action, details, and who recorded them when. An output's card and
lock read them, so a bundle must not be able to write them: notes count here only under a
signature (`export --sign-key`) that a key trusted here verifies over the recipe's content
digest and every note, and only when their text can go into a model card as plain text.
Then each lands as the same event with the same details (outputs come out alike in both
registries) plus one `recipe.import-notes` event saying where they came from and who
signed. Otherwise each lands as a `recipe.unverified-note` event, which nothing reads into
a card or lock, with the reason. A note already recorded here with the same details is not
recorded twice.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.db.models import AuditEvent
from registry.errors import IntegrityError
from registry.evaluation.results_log import ACTIONS
from registry.governance.signing import sign_statement, statement, verified_by_trusted

if TYPE_CHECKING:
    from registry.core import Core

MAX_NOTES = 1000  # per recipe: a tune search records one, each gated materialize one
MAX_BYTES = 64 * 1024  # per note's details
UNVERIFIED = "recipe.unverified-note"  # not in ACTIONS: never read into a card or a lock
# a note's keys become Markdown list items of a model card, its values `code spans`
_CARD_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}")


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


def notes_statement(name: str, version: int, content_digest: str, notes: list[dict[str, Any]]) -> dict:
    """What a notes signature covers: the recipe (by content digest) and every checked note."""
    canonical = json.dumps(notes, sort_keys=True, separators=(",", ":"), allow_nan=False)
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    return statement("recipe-notes", name, version, digest, "recorded", recipe_digest=content_digest)


def sign_notes(core: Core, entry: dict[str, Any], private_key: str) -> list[dict[str, str]]:
    """Signatures over a bundle recipe entry's notes (`export --sign-key`); none without notes."""
    ref = f"{entry['name']}@v{entry['version']}"
    notes = checked_notes(entry, ref)
    if not notes:
        return []
    text, kid = sign_statement(
        core, notes_statement(entry["name"], entry["version"], entry["content_digest"], notes), private_key
    )
    return [{"key_id": kid, "bundle": text}]


def card_safe(notes: list[dict[str, Any]]) -> str | None:
    """None when every note's text can go into a model card as it is, else why not: keys are
    plain words (they become list items), values hold no backtick (they become code spans)."""
    for n in notes:
        for k in n["details"]:
            if not _CARD_KEY.fullmatch(k):
                return f"a {n['action']} note has a key {k[:40]!r} that is not a plain word"
        if "`" in json.dumps(n["details"]):
            return f"a {n['action']} note holds a backtick"
    return None


def verify_notes(
    core: Core, entry: dict[str, Any], notes: list[dict[str, Any]]
) -> tuple[str | None, str | None]:
    """(key id, None) when a trusted key signed exactly these notes of this recipe, else (None, why)."""
    if not notes:
        return None, None
    sigs = entry.get("notes_signatures")
    sigs = [x for x in sigs if isinstance(x, dict)] if isinstance(sigs, list) else []
    if not sigs:
        return None, "the bundle's notes carry no signature (export --sign-key)"
    stmt = notes_statement(entry["name"], int(entry["version"]), entry["content_digest"], notes)
    kid = verified_by_trusted(core, stmt, sigs)
    if not kid:
        return None, "no notes signature verified against a key trusted here"
    why = card_safe(notes)  # a trusted signer's hostile text still stays out of cards
    return (None, why) if why else (kid, None)


def record_notes(
    core: Core,
    s: Session,
    ref: str,
    notes: list[dict[str, Any]],
    bundle: str,
    signed_by: str | None = None,
    why_unverified: str | None = None,
) -> tuple[int, int]:
    """Record the notes not already here for `ref` (same action and details): as the records
    themselves when `signed_by` (a trusted key) vouches for them, else as unverified notes.
    Returns (records, unverified notes) added."""
    if not notes:
        return 0, 0
    events = s.scalars(
        select(AuditEvent).where(AuditEvent.object == ref, AuditEvent.action.in_([*ACTIONS, UNVERIFIED]))
    )
    here = set()
    for e in events:
        action, details = (e.details.get("action"), e.details.get("details")) if e.action == UNVERIFIED else (
            e.action, e.details)  # fmt: skip
        here.add((e.action == UNVERIFIED, action, json.dumps(details, sort_keys=True)))
    added = []
    for n in notes:
        body = json.dumps(n["details"], sort_keys=True)
        if (False, n["action"], body) in here or (not signed_by and (True, n["action"], body) in here):
            continue
        here.add((not signed_by, n["action"], body))
        source = {"source_actor": n["actor"], "source_at": n["at"]}
        if signed_by:
            core.audit(s, n["action"], ref, n["details"])
        else:
            details = {"action": n["action"], "details": n["details"], **source, "bundle": bundle}
            core.audit(s, UNVERIFIED, ref, {**details, "reason": why_unverified})
        added.append({"action": n["action"], **source})
    if added:
        provenance = {"bundle": bundle, "notes": added, "verified": bool(signed_by)}
        if signed_by:
            provenance["signed_by"] = signed_by
        else:
            provenance["reason"] = why_unverified
        core.audit(s, "recipe.import-notes", ref, provenance)
    return (len(added), 0) if signed_by else (0, len(added))

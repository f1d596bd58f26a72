"""The team policy's rows in a session: read, lock, write, seed, and the one-time move from registry.toml.

The keys, defaults and parsing are `registry.db.policy`, which needs no ORM.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from registry.db.models import Meta, TeamPolicySetting
from registry.db.policy import KEYS, NEW_REGISTRY, POLICY_IN_DB, TeamPolicy, parse_value, policy_from_rows


def read_policy(s: Session) -> TeamPolicy:
    """The policy as stored now; an absent key has its default."""
    return policy_from_rows({r.key: r.value for r in s.scalars(select(TeamPolicySetting))})


def lock_policy(s: Session) -> None:
    """Hold the team policy against other writers until this transaction ends.

    An UPDATE of every row takes SQLite's write lock (even when it touches no row) and
    locks PostgreSQL's rows, so a read that follows sees what the write will replace. A
    key not stored yet is guarded by its primary key: a racing insert fails, and the
    retried write reads the value the winner stored.
    """
    stmt = update(TeamPolicySetting).values(set_by=TeamPolicySetting.set_by)
    s.execute(stmt.execution_options(synchronize_session=False))


def write_setting(s: Session, key: str, value: Any, actor: str) -> Any:
    """Store one key (parsed); returns the previous value (the default when unset)."""
    value = parse_value(key, value)
    row = s.get(TeamPolicySetting, key)
    before = KEYS[key].default if row is None else row.value
    if row is None:
        s.add(TeamPolicySetting(key=key, value=value, set_by=actor))
    else:
        row.value, row.set_by = value, actor
    return before


def seed_new_registry(s: Session, actor: str, given: dict[str, Any] | None) -> TeamPolicy:
    """A new registry's policy: defaults, `NEW_REGISTRY`, `given`; its creator the first admin."""
    values = {**NEW_REGISTRY, **(given or {})}
    values.setdefault("admins", [actor])
    for key, value in values.items():
        write_setting(s, key, value, actor)
    s.merge(Meta(key=POLICY_IN_DB, value="1"))
    return read_policy(s)


def import_legacy(s: Session, legacy: dict[str, Any], actor: str) -> bool:
    """Move registry.toml's old settings in once (first open after migration 0004).

    Returns False when the policy already lives in the database: the caller refuses them then.
    """
    if s.get(Meta, POLICY_IN_DB) is not None:
        return not legacy
    for key, value in legacy.items():
        write_setting(s, key, value, actor)
    s.add(Meta(key=POLICY_IN_DB, value="1"))
    return True

"""Where each host keeps each base: one row per (base, host), written by that host.

Which host this is comes from `registry.util.host_id`.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.db.models import BaseLocation


def location(s: Session, base_id: int, host: str) -> str | None:
    return s.scalar(
        select(BaseLocation.path).where(BaseLocation.base_id == base_id, BaseLocation.host == host)
    )


def locations(s: Session, base_id: int) -> dict[str, str]:
    rows = s.execute(select(BaseLocation.host, BaseLocation.path).where(BaseLocation.base_id == base_id))
    return dict(sorted((h, p) for h, p in rows))

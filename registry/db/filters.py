"""A list filter as people give it (`--status`, `--tag K=V`, `--search`, `--archived`), parsed
without SQLAlchemy, so a plain `vector list` stays on the fast DB-API path (db.listings).

records.catalogue.where turns a Filter into the SQL every list applies.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from registry.errors import InvalidFilter

STATUSES = ("draft", "approved", "deprecated")
ARCHIVED = ("hide", "only", "all")  # live versions only (default), archived ones only, both
TAG_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
MAX_VALUE = 256
MAX_SEARCH = 200


def check_tag_key(key: str) -> str:
    if not isinstance(key, str) or not TAG_KEY.fullmatch(key):
        shown = key.encode("unicode_escape").decode()[:80] if isinstance(key, str) else repr(key)
        raise InvalidFilter(
            f"invalid tag key {shown!r}: use letters, digits, '.', '_' or '-' (at most 64 characters)"
        )
    return key


def check_tag_value(key: str, value: str) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_VALUE:
        raise InvalidFilter(f"tag {key}: a value is 1 to {MAX_VALUE} characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise InvalidFilter(f"tag {key}: a value holds no control characters (newlines, tabs)")
    return value


def parse_tag(text: str) -> tuple[str, str]:
    """`KEY=VALUE` as given on a command line or in a query string."""
    key, sep, value = text.partition("=")
    if not sep:
        raise InvalidFilter(f"tag {text[:80]!r}: write it as KEY=VALUE")
    return check_tag_key(key), check_tag_value(key, value)


@dataclass(frozen=True)
class Filter:
    status: str | None = None
    base: str | None = None
    tags: tuple[tuple[str, str], ...] = ()  # every one must match (AND)
    search: str | None = None
    archived: str = "hide"

    @classmethod
    def parse(
        cls,
        status: str | None = None,
        base: str | None = None,
        tags: Any = (),
        search: str | None = None,
        archived: str = "hide",
    ) -> Filter:
        """Options as people type them: empty strings mean no filter; bad ones are one-line errors."""
        if status and status not in STATUSES:
            raise InvalidFilter(f"status must be one of {', '.join(STATUSES)}, not {status[:40]!r}")
        if archived not in ARCHIVED:
            raise InvalidFilter(f"archived must be one of {', '.join(ARCHIVED)}, not {archived[:40]!r}")
        if search and len(search) > MAX_SEARCH:
            raise InvalidFilter(f"search text too long: at most {MAX_SEARCH} characters")
        pairs = tuple(parse_tag(t) if isinstance(t, str) else t for t in tags or ())
        return cls(status or None, base or None, pairs, (search or "").strip() or None, archived)

    @property
    def narrows(self) -> bool:
        """True when anything beyond the default (live versions, every status and base) is asked."""
        return bool(self.status or self.base or self.tags or self.search or self.archived != "hide")

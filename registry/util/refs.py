"""Names and references: `NAME`, `NAME@vN`, `NAME@ALIAS`."""

from __future__ import annotations

import re
from dataclasses import dataclass

from registry.errors import InvalidName

# fullmatch, never match with `$`: `$` also matches before a trailing newline ("prod\n")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_VERSION = re.compile(r"v([1-9][0-9]*)")


def check_name(name: str, what: str = "name") -> str:
    """Names end up in paths and URLs: allow only a safe, portable alphabet."""
    if not isinstance(name, str) or not _NAME.fullmatch(name) or ".." in name:
        shown = name.encode("unicode_escape").decode() if isinstance(name, str) else repr(name)
        raise InvalidName(
            f"invalid {what} {shown!r}: use letters, digits, '.', '_' or '-' "
            "(no '/', '..' or control characters, at most 128 characters)"
        )
    return name


@dataclass(frozen=True)
class Ref:
    name: str
    version: int | None = None
    alias: str | None = None

    @classmethod
    def parse(cls, text: str, what: str = "reference") -> Ref:
        name, sep, tag = text.partition("@")
        check_name(name, what)
        if not sep:
            return cls(name)
        if m := _VERSION.fullmatch(tag):
            return cls(name, version=int(m.group(1)))
        if tag and _NAME.fullmatch(tag) and ".." not in tag:
            return cls(name, alias=tag)
        raise InvalidName(f"invalid {what} {text!r}: expected NAME, NAME@vN or NAME@ALIAS")

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}@v{self.version}"
        if self.alias is not None:
            return f"{self.name}@{self.alias}"
        return self.name


def check_alias(alias: str) -> str:
    check_name(alias, "alias")
    if _VERSION.fullmatch(alias):
        raise InvalidName(f"invalid alias {alias!r}: it would read as a version number")
    return alias

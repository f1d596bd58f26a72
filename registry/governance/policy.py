"""`registry policy set`: the team policy, changed by its admins only, audited (read it with
`Core.policy()`).

The keys and their meaning are in registry.db.policy; here is who may change them. Every
change is an audit row with the value before and after; a refusal is audited too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from registry.db.policy import KEYS, parse_text, parse_value
from registry.db.policy_store import lock_policy, read_policy, write_setting
from registry.errors import RegistryError
from registry.governance.authority import require_admin
from registry.util.faults import pause

if TYPE_CHECKING:
    from registry.core import Core


def set_policy(core: Core, key: str, value: Any, as_text: bool = False) -> tuple[Any, Any]:
    """Set one key (`protected_aliases.ALIAS` sets one alias; null removes it).

    Returns (before, after). Only an account listed in `admins` may change the policy. One
    alias is a read-modify-write of the whole `protected_aliases` map, so the read and the
    write are one transaction holding the policy locked: two admins setting two aliases at
    once both land.
    """
    alias = None
    if key.startswith("protected_aliases."):
        key, alias = "protected_aliases", key.split(".", 1)[1]
    if key not in KEYS:
        raise RegistryError(f"unknown policy key {key!r} (known: {', '.join(KEYS)})")
    if as_text:
        value = _text(value) if alias is not None else parse_text(key, value)
    require_admin(core, "policy.set", key, "change the team policy")
    if alias is None:
        value = parse_value(key, value)
    elif value is not None:
        parse_value(key, {alias: value})  # a bad alias or approver list: one line, before locking
    if key == "admins" and not value:
        raise RegistryError("policy admins cannot be empty: nobody could change the policy again")

    def write() -> tuple[Any, Any]:
        with core.Session.begin() as s:
            lock_policy(s)
            new = value
            if alias is not None:
                aliases = dict(read_policy(s).protected_aliases)
                pause("policy:read")  # drills: another admin sets an alias right here
                if value is None:
                    aliases.pop(alias, None)
                else:
                    aliases[alias] = value
                new = parse_value(key, aliases)
            before = write_setting(s, key, new, core.actor)
            core.audit(s, "policy.set", key, {"from": before, "to": new})
            return before, new

    return core.write(write)


def _text(text: str) -> Any:
    """One alias's approvers as typed: a JSON list, `null`, or comma-separated names."""
    import json

    try:
        return json.loads(text)
    except ValueError:
        return [n.strip() for n in text.split(",") if n.strip()]

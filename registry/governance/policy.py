"""`registry policy set`: the team policy, changed by its admins only, audited (read it with
`Core.policy()`).

The keys and their meaning are in registry.db.policy; here is who may change them. Every
change is an audit row with the value before and after; a refusal is audited too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from registry.db.policy import KEYS, parse_text, parse_value, write_setting
from registry.errors import RegistryError
from registry.governance.lifecycle import refuse

if TYPE_CHECKING:
    from registry.core import Core


def set_policy(core: Core, key: str, value: Any, as_text: bool = False) -> tuple[Any, Any]:
    """Set one key (`protected_aliases.ALIAS` sets one alias; null removes it).

    Returns (before, after). Only an account listed in `admins` may change the policy.
    """
    alias = None
    if key.startswith("protected_aliases."):
        key, alias = "protected_aliases", key.split(".", 1)[1]
    if key not in KEYS:
        raise RegistryError(f"unknown policy key {key!r} (known: {', '.join(KEYS)})")
    if as_text:
        value = _text(value) if alias is not None else parse_text(key, value)
    policy = core.policy()
    if core.actor not in policy.admins:
        refuse(
            core,
            "policy.set",
            key,
            f"only a policy admin ({', '.join(policy.admins) or 'none set'}) may change the team "
            f"policy, not {core.actor}",
            {"actor": core.actor},
        )
    if alias is not None:
        aliases = dict(policy.protected_aliases)
        if value is None:
            aliases.pop(alias, None)
        else:
            aliases[alias] = value
        value = aliases
    value = parse_value(key, value)
    if key == "admins" and not value:
        raise RegistryError("policy admins cannot be empty: nobody could change the policy again")

    def write() -> Any:
        with core.Session.begin() as s:
            before = write_setting(s, key, value, core.actor)
            core.audit(s, "policy.set", key, {"from": before, "to": value})
            return before

    return core.write(write), value


def _text(text: str) -> Any:
    """One alias's approvers as typed: a JSON list, `null`, or comma-separated names."""
    import json

    try:
        return json.loads(text)
    except ValueError:
        return [n.strip() for n in text.split(",") if n.strip()]

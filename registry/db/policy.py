"""Team policy: the rules every user of one registry shares, kept in its database.

Governance settings used to live in each user's `registry.toml`, where a typo
(`four_eye = true`) or an edit silently switched them off. Here they are rows of
`team_policy`, read fresh by every check and changed only by admins (`registry policy set`,
audited). This module is the schema: keys, defaults and parsing; the verbs are in
`registry.governance.policy`.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from registry.config import InterferencePolicy
from registry.errors import RegistryError
from registry.util.refs import check_alias

# set when a registry's policy has come to live in its database (a new registry, or the
# first open after migration 0004 moved registry.toml's settings in): afterwards
# registry.toml's [governance] and [interference] are refused, never read
POLICY_IN_DB = "policy_in_db"


def _bool(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    raise ValueError(f"must be true or false, not {v!r}")


def _names(v: Any) -> list[str]:
    if not isinstance(v, list) or not all(isinstance(x, str) and x.strip() for x in v):
        raise ValueError(f'must be a list of account names, e.g. ["alice"], not {v!r}')
    return sorted(set(v))


def _aliases(v: Any) -> dict[str, list[str]]:
    if not isinstance(v, dict):
        raise ValueError(f'must map alias to approvers, e.g. {{"prod": ["alice"]}}, not {v!r}')
    out = {}
    for alias, who in v.items():
        check_alias(alias)
        out[alias] = _names(who)
    return out


def _drift(v: Any) -> float | None:
    if v is None:
        return None
    if isinstance(v, str) and v.strip().endswith("%"):  # "5%" as typed
        with contextlib.suppress(ValueError):
            v = float(v.strip()[:-1])
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
        raise ValueError(f"must be a percentage ≥ 0 (e.g. 5 for 5%) or null, not {v!r}")
    return float(v)


def _action(v: Any) -> str:
    InterferencePolicy(action=v)
    return v


def _threshold(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise ValueError(f"must be a number in [0, 1], not {v!r}")
    InterferencePolicy(threshold=float(v))
    return float(v)


@dataclass(frozen=True)
class Key:
    parse: Callable[[Any], Any]
    default: Any
    help: str


KEYS: dict[str, Key] = {
    "four_eyes": Key(_bool, False, "approval must come from another account than the creator's"),
    "protected_aliases": Key(_aliases, {}, "alias -> the accounts that may move it"),
    "interference_policy": Key(_action, "warn", "what an interference finding does: warn, refuse or off"),
    "interference_threshold": Key(_threshold, 0.9, "the |cosine| above which vectors interfere"),
    "allow_declared_actor": Key(
        _bool, False, "accept any --actor / REGISTRY_ACTOR name as the actor (tests, one-person setups)"
    ),
    "service_accounts": Key(_names, [], "logins that may act for a declared actor (e.g. a CI bot)"),
    "admins": Key(_names, [], "accounts that may change this policy"),
    "approval_requires_evaluation": Key(
        _bool,
        False,
        "approve only a vector or recipe whose exact digest has a recorded evaluation on its base",
    ),
    "approval_max_ppl_drift": Key(
        _drift, None, "with approval_requires_evaluation: the largest perplexity drift (percent) it may show"
    ),
    "webhook_allow_private": Key(
        _bool, False, "webhooks may post to loopback and private addresses (never link-local or metadata)"
    ),
}

# written into a new registry's database on top of the defaults (tests add to it)
NEW_REGISTRY: dict[str, Any] = {}


@dataclass
class TeamPolicy:
    four_eyes: bool = False
    protected_aliases: dict[str, list[str]] = field(default_factory=dict)
    interference_policy: str = "warn"
    interference_threshold: float = 0.9
    allow_declared_actor: bool = False
    service_accounts: list[str] = field(default_factory=list)
    admins: list[str] = field(default_factory=list)
    approval_requires_evaluation: bool = False
    approval_max_ppl_drift: float | None = None
    webhook_allow_private: bool = False

    @property
    def interference(self) -> InterferencePolicy:
        return InterferencePolicy(self.interference_policy, self.interference_threshold)

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in KEYS}


def parse_value(key: str, value: Any) -> Any:
    """A policy value checked against its key; one line naming the key when wrong."""
    if key not in KEYS:
        raise RegistryError(f"unknown policy key {key!r} (known: {', '.join(KEYS)})")
    try:
        return KEYS[key].parse(value)
    except (ValueError, RegistryError) as e:
        raise RegistryError(f"policy {key} {str(e).splitlines()[0]}") from None


def parse_text(key: str, text: str) -> Any:
    """VALUE as typed on the command line: JSON (true, 0.8, ["alice"]), else a plain word."""
    try:
        value = json.loads(text)
    except ValueError:
        value = text
    return parse_value(key, value)


def initial_policy(given: dict[str, Any] | None) -> TeamPolicy:
    """What `seed_new_registry` will store, before anything is written (to judge the actor)."""
    values = {k: parse_value(k, v) for k, v in {**NEW_REGISTRY, **(given or {})}.items()}
    return TeamPolicy(**{k: values.get(k, spec.default) for k, spec in KEYS.items()})


def policy_from_rows(rows: dict[str, Any]) -> TeamPolicy:
    """The policy of stored key -> value rows; an absent key has its default."""
    values = {}
    for key, spec in KEYS.items():
        values[key] = parse_value(key, rows[key]) if key in rows else spec.default
    return TeamPolicy(**values)

"""`registry policy show|set`: the team policy kept in the database."""

from __future__ import annotations

import click

from registry.cli.common import emit, pass_ctx
from registry.db import listings as catalog


@click.group("policy")
def policy() -> None:
    """The team policy: four-eyes, protected aliases, interference, identity, admins.

    \b
    Example:
      registry policy show
      registry policy set four_eyes true
      registry policy set protected_aliases.prod '["alice", "bob"]'
    """


@policy.command("show")
@pass_ctx
def show(ctx) -> None:
    """Print every policy key with its value (defaults included)."""
    from registry.db.policy import KEYS

    found = ctx.fast(catalog.policy)
    data = (found if found is not None else ctx.registry.policy()).as_dict()
    emit(ctx, data, "\n".join(f"{k} = {_shown(v)}  # {KEYS[k].help}" for k, v in data.items()))


@policy.command("set")
@click.argument("key")
@click.argument("value")
@pass_ctx
def set_(ctx, key: str, value: str) -> None:
    """Set KEY to VALUE (JSON: true, 0.8, ["alice"]; a plain word for warn/refuse/off). Admins only."""
    from registry.governance.policy import set_policy

    before, after = set_policy(ctx.registry, key, value, as_text=True)
    emit(
        ctx,
        {"key": key, "from": before, "to": after, "actor": ctx.registry.actor},
        f"policy {key.split('.')[0]}: {_shown(before)} -> {_shown(after)} ({ctx.registry.actor})",
    )


def _shown(value) -> str:
    import json

    return json.dumps(value)


COMMANDS = [policy]

"""`registry user add|list|remove|passwd`: accounts of the review console and its REST API.

Managing accounts is a policy admin's act (an account acts in the console with its role),
and an account cannot take another person's OS or database login name.
"""

from __future__ import annotations

import sys

import click

from registry.cli.common import emit, pass_ctx, table
from registry.db import listings as catalog


@click.group("user")
def user() -> None:
    """Console and REST accounts (viewer, reviewer, admin)."""


@user.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(["viewer", "reviewer", "admin"]), required=True)
@pass_ctx
def add(ctx, name: str, role: str) -> None:
    """Create an account and print its API token once (only its hash is kept). Policy admins only.

    \b
    Example:
      registry user add alice --role reviewer
      curl -H "Authorization: Bearer TOKEN" http://127.0.0.1:8765/api/v1/vectors
    """
    from registry.console.accounts import add_user
    from registry.governance.authority import check_account_name, require_admin

    require_admin(
        ctx.registry, "account.add", f"account:{name}", "manage console accounts"
    )  # before the name check
    check_account_name(ctx.registry, name, "account.add")
    u, token = add_user(ctx.registry, name, role)
    emit(
        ctx,
        {"name": u.name, "role": u.role, "token": token},
        f"account {u.name} ({u.role}) created; its API token, shown only now:\n{token}",
    )


@user.command("list")
@pass_ctx
def list_users(ctx) -> None:
    """Accounts with their roles (never their tokens)."""
    from registry.db.as_json import timestamp

    found = ctx.fast(catalog.users)
    if found is None:
        from registry.console.accounts import list_users

        found = list_users(ctx.registry)
    rows = [
        {
            "name": u.name,
            "role": u.role,
            "password": u.has_password,
            "created_at": timestamp(u.created_at),
        }
        for u in found
    ]
    shown = [{**r, "password": "set" if r["password"] else "none"} for r in rows]  # JSON keeps the boolean
    emit(ctx, rows, table(shown, ["name", "role", "password", "created_at"]) if rows else "no accounts")


@user.command("remove")
@click.argument("name")
@pass_ctx
def remove(ctx, name: str) -> None:
    """Delete an account; its token stops working and its browser sessions end at once. Admins only."""
    from registry.console.accounts import remove_user
    from registry.governance.authority import require_admin

    require_admin(ctx.registry, "account.remove", f"account:{name}", "manage console accounts")
    remove_user(ctx.registry, name)
    emit(ctx, {"name": name, "removed": True}, f"account {name} removed")


@user.command("passwd")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@pass_ctx
def passwd(ctx, name: str, password_stdin: bool) -> None:
    """Set the password NAME signs in to the console with (asked twice, never echoed). Admins only.

    \b
    Example:
      registry user passwd alice
    """
    from registry.console.accounts import set_password
    from registry.governance.authority import check_account_name, require_admin

    require_admin(ctx.registry, "account.password", f"account:{name}", "manage console accounts")
    check_account_name(ctx.registry, name, "account.password")
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = click.prompt("password", hide_input=True, confirmation_prompt=True)
    set_password(ctx.registry, name, password)
    emit(ctx, {"name": name, "password": True}, f"password of {name} set")


COMMANDS = [user]

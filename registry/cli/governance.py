"""`registry approve`, `registry deprecate`, `registry log`: the lifecycle and its audit trail."""

from __future__ import annotations

import functools

import click

from registry.cli.catalogue import target_options
from registry.cli.common import emit, pass_ctx, table, warn
from registry.db import listings as catalog


def lifecycle_command(name: str, status: str, why: str):
    """approve and deprecate share their arguments; only the target status differs."""

    def wrap(f):
        @click.command(name)
        @click.argument("ref")
        @click.option("--reason", required=True, help=f"{why} (recorded in the audit log).")
        @click.option(
            "--actor",
            help="Who decides, if not the authenticated account (database login, else OS user); "
            "accepted only where the team policy allows declared actors.",
        )
        @target_options
        @pass_ctx
        @functools.wraps(f)
        def command(ctx, ref, reason, actor, kind, base, sign_key=None) -> None:
            reg = ctx.registry
            if actor:
                reg.declare_actor(actor)
            obj = reg.set_status(ref, status, reason, kind, base, sign_key)
            data = {"ref": obj.ref, "kind": kind, "status": obj.status, "reason": reason, "actor": reg.actor}
            if status == "deprecated":
                data["aliases"] = reg.aliases_behind(obj)
                if data["aliases"]:
                    warn(ctx, behind_alias(obj.ref, kind, data["aliases"]))
            emit(ctx, data, f"{obj.ref} is now {obj.status} ({reg.actor}: {reason})")

        if status == "approved":  # only an approval can be signed: deprecate does not offer it
            command = click.option(
                "--sign-key",
                type=click.Path(exists=True, dir_okay=False),
                help="Sign the approval with this elliptic-curve private key (PEM).",
            )(command)
        return command

    return wrap


def behind_alias(ref: str, kind: str, aliases: list[str]) -> str:
    what = (
        "it now resolves to a deprecated version" if kind == "recipe" else "they now use a deprecated vector"
    )
    return (
        f"{ref} is behind {', '.join(aliases)}: {what} (move the alias with `registry recipe alias`, "
        "or materialize with --require-approved to refuse it)"
    )


@lifecycle_command("approve", "approved", "Why this version may ship")
def approve() -> None:
    """Approve a recipe version (or with --vector, a vector version).

    \b
    Example:
      registry approve helpful-safe@v2 --reason "eval 2024-06 passed"
    """


@lifecycle_command("deprecate", "deprecated", "Why this version must no longer ship")
def deprecate() -> None:
    """Deprecate a recipe version (or with --vector, a vector version)."""


@click.command("sign")
@click.argument("ref")
@click.option(
    "--key",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="Elliptic-curve private key (PEM).",
)
@click.option("--vector", "kind", flag_value="vector", default="recipe", help="REF names a vector version.")
@click.option("--base", help="With --vector: disambiguates the vector's base.")
@pass_ctx
def sign(ctx, ref: str, key: str, kind: str, base: str | None) -> None:
    """Sign the approval of an already-approved version, so it (and its aliases) travel in bundles.

    The signer must be someone who could approve it (four-eyes and the other approve rules).

    \b
    Example:
      registry sign helpful-safe@v1 --key release.key
      registry export helpful-safe@prod --out release.bundle
    """
    reg = ctx.registry
    obj, kid = reg.sign(ref, key, kind, base)
    data = {"ref": obj.ref, "kind": kind, "status": obj.status, "key_id": kid, "actor": reg.actor}
    emit(ctx, data, f"signed the approval of {kind} {obj.ref} with key {kid[:16]} ({reg.actor})")


@click.command("log")
@click.option(
    "--object", "obj", help="Only events about exactly this object (a bare NAME matches NAME@… too)."
)
@click.option("--limit", type=int, help="Only the last N events.")
@pass_ctx
def log(ctx, obj, limit) -> None:
    """The audit log: every write, with actor, time, object and details."""
    from registry.db.as_json import event_view

    found = ctx.fast(lambda config: catalog.events(config, obj, limit))
    rows = [event_view(e) for e in (found if found is not None else ctx.registry.log(obj, limit))]
    shown = [{**r, "details": _short(r["details"])} for r in rows]
    emit(ctx, rows, table(shown, ["at", "actor", "action", "object", "details"]) if rows else "no events")


def _short(details: dict) -> str:
    keep = {
        k: v
        for k, v in details.items()
        if k in {"reason", "to", "from", "out", "digest", "reused_from", "forced"}
    }
    return ", ".join(f"{k}={v}" for k, v in keep.items() if v not in (None, False))


COMMANDS = [approve, deprecate, sign, log]

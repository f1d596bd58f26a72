"""`registry tag`, `untag`, `describe`, `archive`, `unarchive`, and the list filters they feed."""

from __future__ import annotations

import functools

import click

from registry.cli.common import emit, pass_ctx, warn
from registry.db.as_json import annotation_view


def filter_options(f):
    """--status, --tag (repeatable), --search, --archived/--all: one Filter for every list."""

    @click.option(
        "--status", type=click.Choice(["draft", "approved", "deprecated"]), help="Only this status."
    )
    @click.option(
        "--tag",
        "tags",
        multiple=True,
        metavar="KEY=VALUE",
        help="Only versions with this tag (repeat: all of them).",
    )
    @click.option("--search", help="Text in the name, description or a tag value (case-insensitive).")
    @click.option("--archived", "archived", flag_value="only", help="Only archived versions.")
    @click.option("--all", "archived", flag_value="all", help="Archived and live versions.")
    @functools.wraps(f)
    def wrapped(*args, status, tags, search, archived, **kwargs):
        from registry.db.filters import Filter

        base = kwargs.get("base")
        kwargs["filter"] = Filter.parse(status, base, list(tags), search, archived or "hide")
        return f(*args, **kwargs)

    return wrapped


def target_options(f):
    """REF names a recipe version unless --vector (then --base disambiguates), as `approve`."""

    @click.option(
        "--vector",
        "kind",
        flag_value="vector",
        default="recipe",
        help="REF names a vector version, not a recipe.",
    )
    @click.option("--base", help="With --vector: disambiguates the vector's base.")
    @functools.wraps(f)
    def wrapped(*args, **kwargs):
        return f(*args, **kwargs)

    return wrapped


def _tags_line(obj) -> str:
    from registry.db.as_json import tags_of

    return " ".join(f"{k}={v}" for k, v in tags_of(obj).items()) or "(no tags)"


@click.command("tag")
@click.argument("ref")
@click.argument("tags", nargs=-1, required=True, metavar="KEY=VALUE...")
@target_options
@pass_ctx
def tag(ctx, ref: str, tags: tuple[str, ...], kind: str, base: str | None) -> None:
    """Set KEY=VALUE tags on a recipe version (or with --vector, a vector version).

    \b
    Example:
      registry tag helpful-safe@v2 team=safety stage=canary
      registry vector list --tag team=safety
    """
    from registry.db.filters import parse_tag

    obj = ctx.registry.tag(ref, dict(parse_tag(t) for t in tags), kind, base)
    emit(ctx, annotation_view(obj, kind), f"{obj.ref}: {_tags_line(obj)}")


@click.command("untag")
@click.argument("ref")
@click.argument("keys", nargs=-1, required=True, metavar="KEY...")
@target_options
@pass_ctx
def untag(ctx, ref: str, keys: tuple[str, ...], kind: str, base: str | None) -> None:
    """Remove tags by KEY from a recipe version (or with --vector, a vector version).

    \b
    Example:
      registry untag helpful-safe@v2 stage
    """
    obj = ctx.registry.untag(ref, list(keys), kind, base)
    emit(ctx, annotation_view(obj, kind), f"{obj.ref}: {_tags_line(obj)}")


@click.command("describe")
@click.argument("ref")
@click.argument("text")
@target_options
@pass_ctx
def describe(ctx, ref: str, text: str, kind: str, base: str | None) -> None:
    """Set the description of a recipe version (or with --vector, a vector version); "" clears it.

    \b
    Example:
      registry describe --vector helpful@v3 "DPO on the 2026-11 helpfulness pairs, seed 0"
    """
    obj = ctx.registry.describe(ref, text, kind, base)
    emit(ctx, annotation_view(obj, kind), f"{obj.ref}: {obj.description or '(no description)'}")


@click.command("archive")
@click.argument("ref")
@target_options
@click.option("--reason", help="Why (recorded in the audit log).")
@click.option(
    "--force", is_flag=True, help="Archive an approved, aliased or materialized version (policy admins only)."
)
@pass_ctx
def archive(ctx, ref: str, kind: str, base: str | None, reason: str | None, force: bool) -> None:
    """Hide version REF (NAME@vN) from lists and bare names; NAME@vN still resolves.

    Locks and lineage keep reading it; `registry gc` may later remove an archived vector's
    store data when no live recipe needs it.

    \b
    Example:
      registry archive --vector helpful@v1 --reason "superseded by v4"
      registry vector list --archived
    """
    from registry.governance.archive import recipes_needing

    reg = ctx.registry
    obj = reg.archive(ref, kind, base, reason, force)
    live = recipes_needing(reg, obj) if kind == "vector" else []
    if live:
        warn(ctx, f"{obj.ref} is still used by live recipe(s) {', '.join(live)}: gc keeps its data for them")
    emit(ctx, {**annotation_view(obj, kind), "live_recipes": live}, f"archived {kind} {obj.ref}")


@click.command("unarchive")
@click.argument("ref")
@target_options
@click.option("--reason", help="Why (recorded in the audit log).")
@pass_ctx
def unarchive(ctx, ref: str, kind: str, base: str | None, reason: str | None) -> None:
    """Bring archived version REF (NAME@vN) back into lists (refused once gc removed its data)."""
    obj = ctx.registry.unarchive(ref, kind, base, reason)
    emit(ctx, annotation_view(obj, kind), f"unarchived {kind} {obj.ref}")


COMMANDS = [tag, untag, describe, archive, unarchive]

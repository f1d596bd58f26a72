"""`registry webhook add|list|remove|test|deliveries|redeliver|deliver`: tell other systems of changes."""

from __future__ import annotations

import click

from registry.cli.common import emit, pass_ctx, table


@click.group("webhook")
def webhook() -> None:
    """Webhooks: POST a signed JSON event to a URL for every change (policy admins only).

    Events: vector.created, vector.status_changed, recipe.created, recipe.status_changed,
    alias.moved, output.materialized, evaluation.recorded. Each is queued in the transaction of its change and
    sent by `registry serve` or `registry webhook deliver`, at least once.

    \b
    Example:
      export DEPLOY_HOOK_SECRET=…   # where the deliverer runs
      registry webhook add deploy --url https://ci.example.com/hooks/registry \\
          --events alias.moved --secret-env DEPLOY_HOOK_SECRET
      registry webhook test deploy
      registry webhook deliver --once   # from cron, when no `registry serve` runs
    """


def _settings(timeout: float, lease: float | None = None, max_attempts: int = 8, backoff: float = 10.0):
    from registry.webhooks.delivery import Settings

    return Settings(timeout=timeout, lease=lease, max_attempts=max_attempts, backoff=backoff)


@webhook.command("add")
@click.argument("name")
@click.option("--url", required=True, help="http(s) URL the events are POSTed to.")
@click.option(
    "--events",
    multiple=True,
    help="Event types (repeat or comma-separate; default: all, including types added later).",
)
@click.option(
    "--secret-env",
    metavar="VAR",
    help="Environment variable holding the signing secret where the deliverer runs (never stored).",
)
@pass_ctx
def add(ctx, name: str, url: str, events: tuple[str, ...], secret_env: str | None) -> None:
    """Add webhook NAME posting to URL.

    \b
    Example:
      registry webhook add deploy --url https://ci.example.com/hook --secret-env HOOK_SECRET
    """
    h = ctx.registry.add_webhook(name, url, list(events), secret_env)
    signed = f", signed with ${h['secret_env']}" if h["secret_env"] else ", unsigned"
    emit(ctx, h, f"webhook {h['name']} -> {h['url']} (events: {', '.join(h['events'])}{signed})")


@webhook.command("list")
@pass_ctx
def list_(ctx) -> None:
    """List webhooks with their pending, delivered and failed deliveries."""
    rows = ctx.registry.webhooks()
    shown = [{**r, "events": ",".join(r["events"])} for r in rows]
    cols = ["name", "url", "events", "secret_env", "pending", "delivered", "failed"]
    emit(ctx, rows, table(shown, cols) if rows else "no webhooks")


@webhook.command("remove")
@click.argument("name")
@pass_ctx
def remove(ctx, name: str) -> None:
    """Remove webhook NAME and its deliveries."""
    out = ctx.registry.remove_webhook(name)
    emit(ctx, out, f"webhook {name} removed ({out['deliveries_removed']} deliveries)")


def _said(r: dict) -> str:
    code = f"HTTP {r['status_code']}" if r["status_code"] is not None else r["error"]
    return f"{code}, {r['duration_ms']:.0f} ms"


@webhook.command("test")
@click.argument("name")
@click.option("--timeout", default=10.0, show_default=True, help="Seconds to wait for the receiver.")
@pass_ctx
def test(ctx, name: str, timeout: float) -> None:
    """Send a `ping` event to NAME now; fails unless the receiver answers 2xx."""
    r = ctx.registry.ping_webhook(name, _settings(timeout))
    if r["status"] != "delivered":
        raise click.ClickException(
            f"ping to webhook {name} not delivered ({_said(r)}); delivery {r['delivery']} is {r['status']}"
        )
    emit(ctx, r, f"ping to webhook {name} delivered ({_said(r)}), delivery {r['delivery']}")


@webhook.command("deliveries")
@click.argument("name", required=False)
@click.option("--status", type=click.Choice(["pending", "delivered", "failed"]))
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1))
@pass_ctx
def deliveries(ctx, name: str | None, status: str | None, limit: int) -> None:
    """Deliveries newest first, with every attempt (of webhook NAME, or all)."""
    rows = ctx.registry.webhook_deliveries(name, status, limit)
    cols = ["id", "webhook", "type", "subject", "status", "attempts", "last_status_code", "last_error"]
    emit(ctx, rows, table(rows, cols) if rows else "no deliveries")


@webhook.command("redeliver")
@click.argument("delivery_id", type=int)
@click.option("--timeout", default=10.0, show_default=True, help="Seconds to wait for the receiver.")
@pass_ctx
def redeliver(ctx, delivery_id: int, timeout: float) -> None:
    """Send delivery DELIVERY_ID's event again, now, as a new delivery (same event id)."""
    r = ctx.registry.redeliver(delivery_id, _settings(timeout))
    emit(ctx, r, f"delivery {r['delivery']} (again {delivery_id}): {r['status']} ({_said(r)})")


@webhook.command("deliver")
@click.option("--once", is_flag=True, help="One pass over the deliveries due now, then exit (cron).")
@click.option("--interval", default=2.0, show_default=True, help="Seconds between passes.")
@click.option("--timeout", default=10.0, show_default=True, help="Seconds to wait for a receiver.")
@click.option("--lease", type=float, help="Seconds a claimed delivery is held [default: timeout + 30].")
@click.option("--max-attempts", default=8, show_default=True, type=click.IntRange(1))
@click.option("--backoff", default=10.0, show_default=True, help="Seconds before the first retry; doubles.")
@pass_ctx
def deliver(
    ctx, once: bool, interval: float, timeout: float, lease, max_attempts: int, backoff: float
) -> None:
    """Send pending webhook deliveries (`registry serve` does this too).

    \b
    Example (cron, every minute):
      * * * * * registry --home /srv/registry webhook deliver --once
    """
    settings = _settings(timeout, lease, max_attempts, backoff)
    if once:
        r = ctx.registry.deliver_webhooks(settings)
        emit(ctx, r, f"{r['attempted']} attempted: {r['delivered']} delivered, "
                     f"{r['pending']} to retry, {r['failed']} failed")  # fmt: skip
        return
    import threading

    from registry.webhooks.delivery import run_forever

    click.echo(f"delivering webhooks every {interval:g} s (Ctrl-C stops)", err=True)
    run_forever(ctx.registry, settings, threading.Event(), interval)


COMMANDS = [webhook]

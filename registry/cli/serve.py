"""`registry serve`: the review console and the REST API, served by uvicorn."""

from __future__ import annotations

import click

from registry.cli.common import pass_ctx


@click.command("serve")
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Address to bind (localhost only by default)."
)
@click.option("--port", default=8765, show_default=True, type=int)
@click.option(
    "--proxy-headers/--no-proxy-headers",
    default=False,
    help="Trust X-Forwarded-Proto/-For from a reverse proxy on this host (TLS ends at the proxy).",
)
@click.option(
    "--webhooks/--no-webhooks",
    default=True,
    help="Deliver pending webhook events from this process (as `registry webhook deliver` does).",
)
@pass_ctx
def serve(ctx, host: str, port: int, proxy_headers: bool, webhooks: bool) -> None:
    """Serve the review console at http://HOST:PORT/ and the REST API under /api/v1.

    \b
    Example:
      registry user add alice --role reviewer
      registry serve --port 8765
    """
    import uvicorn

    from registry.console.app import create_app

    app = create_app(ctx.registry)
    if webhooks:
        from registry.webhooks.delivery import start_thread

        start_thread(ctx.registry)
    click.echo(f"review console on http://{host}:{port}/ (REST API: /api/v1, OpenAPI: /api/v1/openapi.json)")
    uvicorn.run(
        app,
        host=host,
        port=port,
        proxy_headers=proxy_headers,
        forwarded_allow_ips="127.0.0.1" if proxy_headers else None,
        access_log=False,  # query strings could carry user text; the audit log records every write
        log_level="warning",
    )


COMMANDS = [serve]

"""`registry push`: publish a materialized recipe version to the Hugging Face Hub."""

from __future__ import annotations

import click

from registry.cli.common import emit, pass_ctx


@click.command("push")
@click.argument("ref")
@click.option("--repo", required=True, help="Hub model repository, ORG/NAME (created if missing).")
@click.option("--private", is_flag=True, help="Create the repository private.")
@click.option("--revision", help="Branch to push to (created if missing; default: main).")
@click.option("--allow-draft", is_flag=True, help="Push a recipe version that is not approved.")
@pass_ctx
def push(ctx, ref: str, repo: str, private: bool, revision: str | None, allow_draft: bool) -> None:
    """Upload the materialized folder of recipe REF (card, lock, weights) to the Hub.

    The token comes from huggingface_hub's usual places (HF_TOKEN, `hf auth login`).

    \b
    Example:
      registry materialize helpful-safe@prod --out ./merged
      registry push helpful-safe@prod --repo my-org/helpful-safe --private
    """
    res = ctx.registry.push(ref, repo, private=private, revision=revision, allow_draft=allow_draft)
    emit(ctx, res, f"pushed {res['recipe']} ({len(res['files'])} files) to {res['repo']}@{res['revision']}")


COMMANDS = [push]

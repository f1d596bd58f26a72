"""Renders docs/cli.md from the commands themselves, so the reference cannot drift.

python -m registry.cli.reference > docs/cli.md
"""

from __future__ import annotations

import click

from registry.cli import main


def _walk(cmd: click.Command, path: list[str], ctx: click.Context):
    yield path, cmd, ctx
    if isinstance(cmd, click.Group):
        for name in cmd.list_commands(ctx):
            sub = cmd.get_command(ctx, name)
            if sub is not None:
                yield from _walk(
                    sub, [*path, name], sub.make_context(name, [], parent=ctx, resilient_parsing=True)
                )


def render() -> str:
    root = main.make_context("registry", [], resilient_parsing=True)
    parts = [
        "# CLI reference\n",
        "Generated from the commands by `python -m registry.cli.reference > docs/cli.md`"
        " (a test checks it is current). Every command exits 0 on success and non-zero with a"
        " one-line `Error: …` on stderr otherwise; read commands take the global `--json`.\n",
    ]
    for path, cmd, ctx in _walk(main, ["registry"], root):
        if cmd.hidden:
            continue
        parts.append(f"## `{' '.join(path)}`\n")
        parts.append(
            "```\n" + cmd.get_help(ctx).replace("Usage: registry registry", "Usage: registry") + "\n```\n"
        )
    return "\n".join(parts)


if __name__ == "__main__":
    print(render(), end="")

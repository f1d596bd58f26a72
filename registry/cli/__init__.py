"""`registry` command line: a thin click layer over `registry.Registry`.

Only click is imported here; every command imports what it needs when it runs, so
`registry --help` stays fast.
"""

from __future__ import annotations

import os
import sys

# numpy's OpenBLAS would start a spinning thread per core for every small dot product;
# the streaming commands already run one job per core, so BLAS stays on its caller's thread
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import click

from registry.cli.common import Context, RegistryGroup


@click.group(cls=RegistryGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--home",
    type=click.Path(file_okay=False),
    envvar="REGISTRY_HOME",
    help="Registry folder (default: $REGISTRY_HOME, else the nearest folder at or above the "
    "current one holding registry.toml, as git finds .git; `init` uses the current folder).",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Machine-readable output (also accepted after the sub-command).",
)
@click.version_option(package_name="preference-registry")
@click.pass_context
def main(ctx: click.Context, home: str | None, as_json: bool) -> None:
    """Registry for preference vectors: pinned bases, lossless vectors, reproducible merges.

    \b
    Example:
      registry init
      registry base add tiny ./tiny-model
      registry vector import helpful --base tiny --positive ./tiny-dpo
      registry recipe add recipe.yaml
      registry materialize helpful-safe --out ./merged
    """
    ctx.obj = Context(home, as_json)


def _register() -> None:
    from registry.cli import (
        add_preference,
        backup,
        base,
        bundle,
        catalogue,
        evaluation,
        governance,
        init,
        interference,
        lineage,
        maintenance,
        materialize,
        plugins,
        policy,
        publish,
        recipe,
        run,
        serve,
        sweep,
        trust,
        tune,
        user,
        vector,
        webhook,
    )

    for mod in (
        init, base, vector, add_preference, interference, recipe, governance, catalogue, sweep, materialize,
        maintenance, backup, bundle, plugins, lineage, publish, tune, trust, user, serve, policy, run,
        evaluation, webhook,
    ):  # fmt: skip
        for cmd in mod.COMMANDS:
            main.add_command(cmd)


_register()

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

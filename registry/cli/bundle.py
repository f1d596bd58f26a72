"""`registry export` and `registry import-bundle`: move registry content between homes."""

from __future__ import annotations

import click

from registry.cli.common import emit, pass_ctx


@click.command("export")
@click.argument("refs", nargs=-1, required=True)
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Bundle file to write (a tar).")
@click.option(
    "--sign-key",
    type=click.Path(exists=True, dir_okay=False),
    help="Private key that signs the recipes' tune and retention records (unsigned ones land unverified).",
)
@pass_ctx
def export(ctx, refs: tuple[str, ...], out: str, sign_key: str | None) -> None:
    """Export recipes (with their vectors and base pins) and vectors to a bundle FILE.

    \b
    Example (into an air-gapped registry):
      registry export helpful-safe@prod verbose@v2 --out release.bundle --sign-key release.key
    """
    from registry.exchange.bundle import export_bundle

    report = export_bundle(ctx.registry, list(refs), out, sign_key)
    human = f"exported {len(report['recipes'])} recipe(s), {len(report['vectors'])} vector(s) to {out}"
    if report["left_behind"]:
        human += "\nwill not travel:\n" + "\n".join(f"  {line}" for line in report["left_behind"])
    emit(ctx, report, human)


@click.command("import-bundle")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--base-path",
    "base_paths",
    multiple=True,
    metavar="NAME=DIR",
    help="Local folder of a base the bundle needs and this registry lacks.",
)
@pass_ctx
def import_bundle(ctx, file: str, base_paths: tuple[str, ...]) -> None:
    """Verify a bundle by digest and add its contents (identical ones are skipped).

    \b
    Example:
      registry import-bundle release.bundle --base-path tiny=/models/tiny
    """
    from registry.exchange.bundle import import_bundle as run

    paths = {}
    for item in base_paths:
        name, sep, folder = item.partition("=")
        if not sep or not name or not folder:
            raise click.BadParameter(f"expected NAME=DIR, not {item!r}", param_hint="--base-path")
        paths[name] = folder
    report = run(ctx.registry, file, paths)
    lines = [
        f"{i['kind']} {i['ref']}: {i['outcome']}, {i['status']}"
        + (f" ({i['reason']})" if i.get("reason") else "")
        for i in report["items"]
    ]
    lines.append(
        f"imported {len(report['vectors'])} vector(s), {len(report['recipes'])} recipe(s) and "
        f"{report.get('notes', 0)} tune/retention record(s) from {file}"
    )
    if report.get("aliases"):
        lines.append(f"aliases recreated: {', '.join(report['aliases'])}")
    lines += [f"alias not recreated: {why}" for why in report.get("aliases_skipped", [])]
    if report.get("unverified_notes"):
        lines.append(
            f"{report['unverified_notes']} tune/retention record(s) landed unverified (not signed by a key "
            "trusted here): kept in the log, never in a card or lock"
        )
    emit(ctx, report, "\n".join(lines))


COMMANDS = [export, import_bundle]

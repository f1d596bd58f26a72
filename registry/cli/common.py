"""Helpers shared by the command modules: context, errors, output."""

from __future__ import annotations

import json
from typing import Any

import click


class Context:
    def __init__(self, home: str | None, as_json: bool):
        self.home = home
        self.as_json = as_json
        self._registry = None

    def fast(self, read):
        """A read-only listing without the ORM when possible (None: take the full path)."""
        from registry.config import Config

        home = home_path(self).resolve()
        return read(Config.load(home))

    @property
    def registry(self):
        if self._registry is None:
            from registry.api import Registry

            self._registry = Registry.open(self.home)
        return self._registry


class RegistryGroup(click.Group):
    """Turns library errors into one-line messages and a non-zero exit."""

    def invoke(self, ctx: click.Context) -> Any:
        from registry.errors import RegistryError

        try:
            return super().invoke(ctx)
        except RegistryError as e:
            raise click.ClickException(str(e).splitlines()[0] if str(e) else type(e).__name__) from None
        except KeyboardInterrupt:
            raise click.ClickException("interrupted") from None
        except OSError as e:
            raise click.ClickException(f"{e.strerror or e}: {e.filename or ''}".rstrip(": ")) from None


pass_ctx = click.make_pass_decorator(Context)


def emit(ctx: Context, data: Any, human: str | None = None) -> None:
    """JSON on --json, else the human text (or a compact rendering of the data)."""
    if ctx.as_json or human is None:
        click.echo(json.dumps(data, indent=2, sort_keys=False, default=str))
    else:
        click.echo(human)


def table(rows: list[dict[str, Any]], columns: list[str], title: str | None = None) -> str:
    from io import StringIO

    from rich import box
    from rich.console import Console
    from rich.table import Table

    t = Table(title=title, box=box.SIMPLE_HEAD, header_style="bold")
    for c in columns:
        t.add_column(c)
    for r in rows:
        t.add_row(*("" if r.get(c) is None else str(r.get(c)) for c in columns))
    buf = StringIO()
    Console(file=buf, width=200, color_system=None).print(t)
    return buf.getvalue().rstrip()


def home_path(ctx: Context):
    import os
    from pathlib import Path

    return Path(ctx.home or os.environ.get("REGISTRY_HOME") or ".")

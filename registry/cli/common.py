"""Helpers shared by the command modules: context, errors, output."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from registry.training.progress import reporting


class Context:
    def __init__(self, home: str | None, as_json: bool):
        self.home = home
        self.as_json = as_json
        self._registry = None

    def found_home(self) -> Path:
        """--home / $REGISTRY_HOME when given, else the registry at or above the current folder."""
        from registry.config import find_home

        return Path(self.home).resolve() if self.home else find_home()

    def fast(self, read):
        """A read-only listing without the ORM when possible (None: take the full path)."""
        from registry.config import Config

        return read(Config.load(self.found_home()))

    @property
    def registry(self):
        if self._registry is None:
            from registry.api import Registry

            self._registry = Registry.open(self.found_home())
        return self._registry


def json_anywhere(args: list[str]) -> list[str]:
    """Move `--json` given after a sub-command to the front, where the group parses it."""
    cut = args.index("--") if "--" in args else len(args)
    if "--json" not in args[:cut]:
        return args
    return ["--json", *(a for a in args[:cut] if a != "--json"), *args[cut:]]


class CommandError(click.ClickException):
    """A one-line failure; under --json it is one JSON object on stderr, like every other note.

    `code` names the kind of failure for a pipeline to branch on (`not_found`, `usage`,
    `database`, …); the message is the one-line text a person would see.
    """

    def __init__(self, message: str, code: str, as_json: bool, exit_code: int = 1):
        super().__init__(message)
        self.code, self.as_json, self.exit_code = code, as_json, exit_code

    def show(self, file: Any = None) -> None:
        if not self.as_json:
            return super().show(file)
        click.echo(json.dumps({"event": "error", "code": self.code, "message": self.message}), err=True)


def error_code(e: BaseException) -> str:
    """`NotFound` -> `not_found`: the exception's kind, as a stable snake_case word."""
    import re

    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(e).__name__).lower()


class RegistryGroup(click.Group):
    """Turns library and database errors into one-line messages and a non-zero exit."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        args = json_anywhere(list(args))
        as_json = "--json" in args  # read now: click's parser consumes the list
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as e:  # a bad global option: still JSON under --json
            raise _as_error(e, as_json) from None

    def invoke(self, ctx: click.Context) -> Any:
        from registry.errors import RegistryError

        as_json = bool(ctx.params.get("as_json"))
        try:
            with reporting(json=as_json):  # progress: JSON lines under --json
                return super().invoke(ctx)
        except RegistryError as e:
            message = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise CommandError(message, error_code(e), as_json) from None
        except click.ClickException as e:
            raise _as_error(e, as_json) from None
        except KeyboardInterrupt:
            raise CommandError("interrupted", "interrupted", as_json) from None
        except OSError as e:
            message = f"{e.strerror or e}: {e.filename or ''}".rstrip(": ")
            raise CommandError(message, "os_error", as_json) from None
        except Exception as e:
            if type(e).__module__.split(".")[0] not in {"sqlalchemy", "sqlite3", "psycopg"}:
                raise
            raise CommandError(database_error(ctx.obj, e), "database", as_json) from None


def _as_error(e: click.ClickException, as_json: bool) -> click.ClickException:
    """Click's own errors as they are, or under --json as one JSON line (usage errors: code `usage`)."""
    if not as_json or isinstance(e, CommandError):
        return e
    usage = isinstance(e, click.UsageError)
    message = e.format_message().splitlines()[0] if e.format_message() else type(e).__name__
    if usage and e.ctx is not None:
        message = f"{message} (see `{e.ctx.command_path} --help`)"
    return CommandError(message, "usage" if usage else "failed", True, e.exit_code)


def database_error(obj: Context | None, e: Exception) -> str:
    """One line for an error the database raised: which database, what it said, what to do."""
    from registry.config import redact, scrub
    from registry.db.grants import denied_message, permission_denied
    from registry.db.health import RESTORE, sqlite_path

    reg = getattr(obj, "_registry", None)
    where = "the registry's database"
    if reg is not None:
        path = sqlite_path(reg.config.db_url)
        where = str(path) if path else f"database {redact(reg.engine.url)}"
    said = str(getattr(e, "orig", None) or e).strip().splitlines()
    said = [scrub(line, reg.engine.url) for line in said] if reg is not None else said
    if permission_denied(e):  # not damage: the login lacks a grant
        login = reg.engine.url.username if reg is not None else None
        return denied_message(where, login, (said or [type(e).__name__])[0][:200])
    return (
        f"database error in {where.removeprefix('database ')}: {(said or [type(e).__name__])[0][:200]}; "
        f"run `registry verify`, and if the database is damaged {RESTORE}"
    )


pass_ctx = click.make_pass_decorator(Context)


def emit(ctx: Context, data: Any, human: str | None = None) -> None:
    """JSON on --json, else the human text (or a compact rendering of the data)."""
    if ctx.as_json or human is None:
        click.echo(json.dumps(data, indent=2, sort_keys=False, default=str))
    else:
        click.echo(human)


def say(ctx: Context, message: str, event: str = "message") -> None:
    """A note on stderr: plain text for people, one JSON object per line under --json."""
    if ctx.as_json:
        click.echo(json.dumps({"event": event, "message": message}), err=True)
    else:
        click.echo(f"warning: {message}" if event == "warning" else message, err=True)


def warn(ctx: Context, message: str) -> None:
    say(ctx, message, "warning")


def table(rows: list[dict[str, Any]], columns: list[str], title: str | None = None) -> str:
    """A plain-text table; cells are text, never rich markup (`eta[verbose]` stays as written)."""
    from io import StringIO

    from rich import box
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    t = Table(title=title, box=box.SIMPLE_HEAD, header_style="bold")
    for c in columns:
        t.add_column(escape(c))
    for r in rows:
        t.add_row(*("" if r.get(c) is None else escape(str(r.get(c))) for c in columns))
    buf = StringIO()
    Console(file=buf, width=200, color_system=None).print(t)
    return buf.getvalue().rstrip()


def home_path(ctx: Context) -> Path:
    """Where `init` creates a registry: --home / $REGISTRY_HOME, else the current folder."""
    import os

    return Path(ctx.home or os.environ.get("REGISTRY_HOME") or ".")

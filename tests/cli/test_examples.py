"""Every `registry …` example a user is shown (in --help texts and in hints inside errors)
parses as shown: the command exists, every required option and argument is there."""

from __future__ import annotations

import ast
import re
import shlex
from pathlib import Path

import click
import pytest

from registry.cli import main

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = re.compile(r"…|\||\.\.\.")  # `registry vector …`, `registry policy show|set`: names, not examples


def commands(group: click.Group = main, path: tuple[str, ...] = ("registry",)):
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        yield (*path, name), cmd
        if isinstance(cmd, click.Group):
            yield from commands(cmd, (*path, name))


def help_examples(text: str) -> list[str]:
    """The command lines under `Example…:` in a help text (a trailing backslash continues one)."""
    out, lines, taking = [], text.splitlines(), False
    for raw in lines:
        line = raw.strip()
        if line.startswith("Example"):
            taking = True
            continue
        if taking and line.startswith("registry "):
            out.append(line.split(" | ")[0])  # a shell pipeline: the registry part
        elif taking and out and out[-1].endswith("\\"):
            out[-1] = out[-1][:-1] + " " + line
    return out


def problem(command_line: str, named_alone_ok: bool = False) -> str | None:
    """Why `command_line` would fail to parse as shown (None: it parses).

    With `named_alone_ok`, a command named without arguments (`registry recipe alias`, in a
    sentence) is a reference to it, not an example to run."""
    try:
        tokens = shlex.split(command_line, comments=True)[1:]
    except ValueError:  # a quote the extraction cut
        tokens = command_line.split()[1:]
    try:
        ctx = main.make_context("registry", tokens)
        cmd = main
        while isinstance(cmd, click.Group):
            rest = [*ctx._protected_args, *ctx.args]
            if not rest:
                return None  # a group named alone: a reference
            if rest[0] == "X":
                return None  # the command's name is a placeholder: nothing to check
            name, cmd, rest = cmd.resolve_command(ctx, rest)
            if named_alone_ok and not rest:
                return None
            ctx = cmd.make_context(name, rest, parent=ctx)
    except click.exceptions.NoArgsIsHelpError:
        return None  # a group named alone: a reference
    except click.BadParameter as e:
        if "does not exist" in e.format_message():  # an example's path is nobody's file
            return None
        return e.format_message()
    except click.UsageError as e:
        if named_alone_ok and tokens[-1].startswith("--") and "requires an argument" in e.format_message():
            return None  # `registry verify --lock` in a sentence names the option
        return e.format_message()
    return None


def test_every_help_example_parses():
    shown = [(" ".join(path), line) for path, cmd in commands() for line in help_examples(cmd.help or "")]
    assert len(shown) > 30
    assert any(" add-preference helpful" in line for _, line in shown)
    broken = [f"{where}: {line} -> {problem(line)}" for where, line in shown if problem(line)]
    assert broken == []


def hints() -> list[tuple[str, str]]:
    """`registry …` command lines inside the package's strings (f-string fields as X)."""
    names = {path[1] for path, _ in commands()}
    start = re.compile(r"\bregistry (?:--[\w-]+ \S+ )*(?:" + "|".join(map(re.escape, names)) + r")\b")
    out = []
    for f in [*ROOT.joinpath("registry").rglob("*.py"), *ROOT.joinpath("plugins").rglob("*.py")]:
        tree = ast.parse(f.read_text())
        docstrings = {
            id(n.body[0].value)
            for n in ast.walk(tree)
            if isinstance(n, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and n.body
            and isinstance(n.body[0], ast.Expr)
            and isinstance(n.body[0].value, ast.Constant)
        }
        parts = {id(v) for n in ast.walk(tree) if isinstance(n, ast.JoinedStr) for v in n.values}
        for node in ast.walk(tree):
            if id(node) in parts:
                continue  # a piece of an f-string: read with its whole
            if isinstance(node, ast.JoinedStr):
                text = "".join(v.value if isinstance(v, ast.Constant) else "X" for v in node.values)
            elif (
                isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
            ):
                text = node.value
            else:
                continue
            for m in start.finditer(text):
                line = re.split(r"[`)\n;]", text[m.start() :])[0].rstrip(" .:,")
                out.append((f"{f.relative_to(ROOT)}:{node.lineno}", line))
    return out


def test_every_hint_parses():
    found = hints()
    assert any("registry approve" in line for _, line in found)
    examples = [(w, line) for w, line in found if not REFERENCE.search(line)]
    broken = [f"{where}: {line} -> {problem(line, True)}" for where, line in examples if problem(line, True)]
    assert broken == []


@pytest.mark.parametrize(
    "line, error",
    [
        ("registry approve helpful-safe@v1", "Missing option '--reason'."),
        ("registry add-preference helpful --base tiny", "Missing option '--data'."),
        ("registry nosuch", "No such command 'nosuch'."),
        ("registry approve x@v1 --reason ok", None),
        ("registry vector", None),
    ],
)
def test_the_check_itself(line, error):
    assert problem(line) == error

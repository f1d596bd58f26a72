"""Under --json a failure is one JSON object on stderr (`event`, `code`, `message`), as the
schemas README promises for everything on stderr; without --json it stays `Error: …`."""

from __future__ import annotations

import json

import pytest

CASES = {
    # name: (args, exit code, code, message)
    "unknown vector": (["vector", "show", "nope"], 1, "not_found", "vector not found: nope"),
    "unknown recipe": (["materialize", "nope", "--out", "{tmp}/o"], 1, "not_found", "recipe not found: nope"),
    "missing argument": (["vector", "show"], 2, "usage", "Missing argument 'REF'."),
    "missing option": (
        ["add-preference", "helpful", "--base", "tiny"],
        2,
        "usage",
        "Missing option '--data'.",
    ),
    "unknown command": (["nosuch"], 2, "usage", "No such command 'nosuch'."),
    "unknown global option": (["--bogus", "vector", "list"], 2, "usage", "No such option '--bogus'."),
    "bad value": (
        ["log", "--limit", "x"],
        2,
        "usage",
        "Invalid value for '--limit': 'x' is not a valid integer.",
    ),
    "second init": (["init"], 1, "already_exists", "a registry already exists at {home}"),
    "bad reference": (["vector", "show", "x@"], 1, "invalid_name", "invalid vector reference 'x@'"),
}


@pytest.mark.parametrize("where", ["before", "after"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_errors_under_json_are_one_json_line(sqlite_reg, cli, home, tmp_path, case, where):
    args, exit_code, code, message = CASES[case]
    args = [a.format(tmp=tmp_path, home=home) for a in args]
    argv = ["--json", *args] if where == "before" else [*args, "--json"]
    status, out, err = cli(*argv)
    assert status == exit_code and out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    event = json.loads(lines[0])
    assert event["event"] == "error" and event["code"] == code, event
    assert event["message"].startswith(message.format(home=home)), event


def test_without_json_the_error_stays_a_line_for_people(sqlite_reg, cli):
    status, out, err = cli("vector", "show", "nope")
    assert (status, out, err) == (1, "", "Error: vector not found: nope\n")

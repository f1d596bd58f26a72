"""Names refuse a trailing newline (issue 24.12): `$` matched before it, fullmatch does not."""

from __future__ import annotations

import pytest

from registry.errors import InvalidName
from registry.util.refs import Ref, check_alias, check_name


@pytest.mark.parametrize("bad", ["prod\n", "helpful\n", "a\r", "x@v1\n"])
def test_trailing_newline_is_refused(bad):
    with pytest.raises(InvalidName, match=r"invalid|expected NAME"):
        Ref.parse(bad)
    with pytest.raises(InvalidName):
        check_name(bad)


def test_alias_and_version_tags_by_full_match():
    with pytest.raises(InvalidName):
        check_alias("prod\n")
    with pytest.raises(InvalidName):
        Ref.parse("mix@v1\n")
    with pytest.raises(InvalidName):
        Ref.parse("mix@prod\n")
    assert Ref.parse("mix@v12") == Ref("mix", version=12) and Ref.parse("mix@prod") == Ref(
        "mix", alias="prod"
    )


def test_cli_name_with_newline_is_one_line(sqlite_reg, models, cli):
    code, out, err = cli("vector", "import", "helpful\n", "--base", "tiny", "--positive", models["plus"])
    assert code != 0 and out == "" and len(err.strip().splitlines()) == 1
    assert "invalid" in err and sqlite_reg.vectors() == []

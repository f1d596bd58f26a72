"""Read commands answer without tensor libraries, and their DB-API path agrees with the ORM's.

`list` and `show` commands read through `registry.db.listings` (sqlite3 / psycopg) so that
they start in a tenth of a second; these tests keep them off numpy, zarr, ml_dtypes, torch
and the ORM, and compare every such command's `--json` output with the full path's.
Timings live in benchmarks/cli_latency.py, not here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import registry

TENSOR_LIBRARIES = {"numpy", "zarr", "ml_dtypes", "torch", "safetensors", "transformers"}

READS = [
    ["base", "list"],
    ["base", "show", "tiny"],
    ["vector", "list"],
    ["vector", "list", "--base", "tiny"],
    ["vector", "show", "helpful"],
    ["vector", "show", "harmless@v1", "--base", "tiny"],
    ["recipe", "list"],
    ["recipe", "show", "helpful-safe"],
    ["recipe", "show", "helpful-safe@v1"],
    ["recipe", "show", "helpful-safe@prod"],
    ["log"],
    ["log", "--limit", "3"],
    ["log", "--object", "helpful-safe"],
    ["user", "list"],
    ["trust", "list"],
    ["policy", "show"],
]


@pytest.fixture
def catalogue(loaded, models):
    """`loaded` with two recipe versions (one approved, behind alias prod), a deprecated
    vector version, a console account, and this host's copy of the base located elsewhere."""
    from registry.console.accounts import add_user

    terms = [{"vector": "helpful", "weight": 1.0}, {"vector": "harmless@v1", "weight": 0.5}]
    for w in (0.5, 0.25):
        terms[1]["weight"] = w
        loaded.add_recipe({"name": "helpful-safe", "base": "tiny", "method": "linear", "terms": terms})
    for v in ("helpful@v1", "harmless@v1"):
        loaded.approve(v, "tested", kind="vector")
    loaded.approve("helpful-safe@v1", "tested")
    loaded.set_alias("helpful-safe@v1", "prod")
    loaded.import_vector("helpful", "tiny", models["plus2"])
    loaded.deprecate("helpful@v2", "superseded", kind="vector")
    add_user(loaded, "rita", "reviewer")
    return loaded


def _in_process(home: Path, argv: list[str]) -> tuple[str, set[str]]:
    """Run the CLI's main in a fresh interpreter: its output and every module it imported."""
    code = (
        "import json, sys\nfrom registry.cli import main\n"
        f"try:\n    main({argv!r}, prog_name='registry')\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        "print('MODULES=' + json.dumps(sorted(sys.modules)))\n"
    )
    root = str(Path(registry.__file__).parent.parent)
    env = {
        **os.environ,
        "REGISTRY_HOME": str(home),
        "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]),
    }
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stderr
    out, _, modules = p.stdout.rpartition("MODULES=")
    return out, set(json.loads(modules))


def test_read_commands_import_no_tensor_library_and_no_orm(catalogue, home):
    for argv in READS:
        out, modules = _in_process(home, argv)
        assert out.strip(), argv
        assert not TENSOR_LIBRARIES & {m.split(".")[0] for m in modules}, argv
        assert "sqlalchemy.orm" not in modules, argv  # the DB-API path answered, not the fallback
        assert "registry.api" not in modules and "registry.core" not in modules, argv


def test_fast_reads_agree_with_the_full_path(catalogue, cli, monkeypatch):
    from registry.cli.common import Context

    fast = {}
    for argv in READS:
        code, out, err = cli("--json", *argv)
        assert code == 0, (argv, err)
        fast[tuple(argv)] = json.loads(out)
    with monkeypatch.context() as m:
        m.setattr(Context, "fast", lambda self, read: None)
        for argv in READS:
            code, out, err = cli("--json", *argv)
            assert code == 0, (argv, err)
            assert json.loads(out) == fast[tuple(argv)], argv
    assert [r["ref"] for r in fast[("vector", "list")]] == ["harmless@v1", "helpful@v1", "helpful@v2"]
    assert fast[("vector", "show", "helpful")]["ref"] == "helpful@v1"  # v2 is deprecated
    assert fast[("recipe", "show", "helpful-safe")]["ref"] == "helpful-safe@v2"
    assert fast[("recipe", "show", "helpful-safe@prod")]["aliases"] == ["prod"]
    assert len(fast[("vector", "show", "helpful")]["tensors"]) > 0
    assert [u["name"] for u in fast[("user", "list")]] == ["rita"]
    assert len(fast[("log", "--limit", "3")]) == 3


def test_fast_reads_leave_errors_to_the_full_path(catalogue, cli):
    for argv, said in [
        (["vector", "show", "nosuch"], "vector not found: nosuch"),
        (["vector", "show", "helpful", "--base", "nosuch"], "base not found"),
        (["recipe", "show", "helpful-safe@staging"], "recipe alias not found"),
        (["base", "show", "nosuch"], "base not found: nosuch"),
        (["vector", "show", "bad/name"], "invalid vector reference"),
    ]:
        code, _, err = cli(*argv)
        assert code != 0 and said in err and len(err.strip().splitlines()) == 1, (argv, err)

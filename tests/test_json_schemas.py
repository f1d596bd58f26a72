"""Every command's --json output against its JSON Schema in docs/json-schemas/, from real runs.

One registry is driven through every command of the click tree (training, tune and
consistency included, on the tiny model); each output is validated against the command's
schema, and under --json every stderr line must be a JSON object (progress, warnings).
"""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from registry.cli import main
from tests.webhooks.receiver import Receiver

SCHEMAS = Path(__file__).resolve().parent.parent / "docs" / "json-schemas"
FAST = ["--steps", "1", "--warmup-ratio", "0", "--batch-size", "4", "--learning-rate", "1e-3"]


def leaf_commands(group: click.Group = main, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    ctx = click.Context(group)
    out = []
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        if isinstance(cmd, click.Group):
            out += leaf_commands(cmd, (*path, name))
        else:
            out.append((*path, name))
    return out


# commands that print no JSON document, and why
NO_DOCUMENT = {("serve",): "runs the review console until stopped"}


def documented_commands() -> list[tuple[str, ...]]:
    return [p for p in leaf_commands() if p not in NO_DOCUMENT]


def schema_name(path: tuple[str, ...]) -> str:
    """Plugin commands of add-preference share one output shape, so one schema."""
    return "add-preference" if path[0] == "add-preference" else "-".join(path)


def ec_keys(folder: Path) -> tuple[Path, Path]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    priv, pub = folder / "release.key", folder / "release.pub"
    priv.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    pub.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return priv, pub


def offline_hub(mp: pytest.MonkeyPatch) -> None:
    """The Hub is not reachable here: HfApi's three calls answer as the Hub would."""
    from huggingface_hub import CommitInfo, HfApi

    mp.setattr(HfApi, "create_repo", lambda self, repo_id, **kw: f"https://huggingface.co/{repo_id}")
    mp.setattr(HfApi, "create_branch", lambda self, repo_id, **kw: None)
    mp.setattr(
        HfApi,
        "upload_folder",
        lambda self, **kw: CommitInfo(
            commit_url=f"https://huggingface.co/{kw['repo_id']}/commit/abc123",
            commit_message=kw["commit_message"],
            commit_description="",
            oid="abc123",
        ),
    )


@pytest.fixture(scope="module")
def outputs(models, tmp_path_factory) -> dict[tuple[str, ...], list[tuple[str, str]]]:
    """(stdout, stderr) of every command run with --json, by command path."""
    root = tmp_path_factory.mktemp("json")
    home, other = root / "home", root / "other"
    runs: dict[tuple[str, ...], list[tuple[str, str]]] = {}
    runner = CliRunner()

    def run(*args, home_dir: Path = home, stdin: str | None = None) -> dict | list:
        args = [str(a) for a in args]
        result = runner.invoke(
            main,
            ["--home", str(home_dir), "--json", *args],
            env={"REGISTRY_ACTOR": None},  # the OS user: the registry's creator and policy admin
            input=stdin,
            catch_exceptions=False,
        )
        assert result.exit_code == 0, (args, result.stderr)
        path = next(p for p in leaf_commands() if tuple(args[: len(p)]) == p)
        runs.setdefault(path, []).append((result.stdout, result.stderr))
        return json.loads(result.stdout)

    priv, pub = ec_keys(root)
    (root / "second").mkdir()
    _, pub2 = ec_keys(root / "second")
    recipe = root / "mix.yaml"
    recipe.write_text(
        "name: mix\nbase: tiny\ndtype: float32\nterms:\n"
        "  - {vector: helpful, weight: 1.0}\n  - {vector: verbose, weight: 0.5}\n"
    )
    hook = Receiver().start()
    with pytest.MonkeyPatch.context() as mp:
        offline_hub(mp)
        run("init")
        run("base", "add", "tiny", models["base"])
        run("base", "list")
        run("base", "show", "tiny")
        run("base", "locate", "tiny", models["base"])
        run("base", "add", "spare", models["plus"])
        run("base", "remove", "spare")
        run("user", "add", "alice", "--role", "reviewer")
        run("user", "list")
        run("user", "passwd", "alice", "--password-stdin", stdin="a long enough password\n")
        run("user", "remove", "alice")
        run("plugins", "list")
        run("policy", "show")
        run("policy", "set", "interference_threshold", "0.95")
        run("policy", "set", "webhook_allow_private", "true")
        run("webhook", "add", "ci", "--url", hook.url)
        run("vector", "import", "helpful", "--base", "tiny", "--positive", models["plus"])
        run("vector", "import", "harmless", "--base", "tiny", "--positive", models["plus2"], "--negative", models["minus"])  # fmt: skip
        trained = run("add-preference", "verbose", "--base", "tiny", "--pairs", "4", *FAST)
        run("run", "pairs", trained["lineage"]["id"])
        run("vector", "list")
        run("vector", "show", "helpful")
        run("vector", "compare", "helpful", "harmless")
        run("vector", "consistency", "verbose", "--seeds", "2")
        run("interference")
        run("recipe", "add", recipe)
        run("approve", "helpful", "--vector", "--reason", "reviewed")
        run("approve", "verbose", "--vector", "--reason", "reviewed")
        run("sign", "helpful@v1", "--vector", "--key", priv)  # approved earlier without a key
        run("approve", "mix", "--reason", "evals passed", "--sign-key", priv)
        run("recipe", "alias", "mix@v1", "prod")
        run("recipe", "list")
        run("tag", "mix@v1", "team=safety", "stage=canary")
        run("untag", "mix@v1", "stage")
        run("describe", "--vector", "harmless@v1", "imported from two fine-tunes")
        run("archive", "--vector", "harmless@v1", "--reason", "superseded")
        run("gc", "--dry-run")
        run("unarchive", "--vector", "harmless@v1")
        run("recipe", "show", "mix@prod")
        run("materialize", "mix@prod", "--out", root / "out")
        run("sweep", "mix", "--vary", "verbose", "--etas", "0,1", "--out", root / "sweep")
        run("sweep", "helpful", "--record", "--etas", "0,1", "--prompts", "2", "--samples", "1")
        run("evaluation", "list")
        run("evaluation", "show", "helpful")
        run("tune", "mix", "--vary", "verbose", "--target", "answer_length=20", "--range", "0:1", "--max-evals", "3", "--tol", "1000")  # fmt: skip
        run("lineage", "mix@prod")
        run("push", "mix@prod", "--repo", "org/mix")
        run("trust", "add", pub, "--name", "release")
        run("trust", "list")
        run("trust", "add", pub2, "--name", "leaked")
        run("trust", "remove", "leaked", "--reason", "key leaked")
        run("export", "mix@v1", "--out", root / "mix.bundle")
        run("deprecate", "mix@v1", "--reason", "superseded")
        run("webhook", "list")
        run("webhook", "test", "ci")
        run("webhook", "deliver", "--once")
        first = run("webhook", "deliveries", "ci")[-1]
        run("webhook", "redeliver", first["id"])
        run("webhook", "remove", "ci")
        run("log", "--limit", "5")
        run("verify")
        run("verify", "--lock", root / "out" / "registry-lock.json")
        run("gc", "--dry-run")
        run("backup", root / "backup")
        run("db", "upgrade")
        run("db", "grants", "alice")
        run("init", home_dir=other)
        run("base", "add", "tiny", models["base"], home_dir=other)
        run("import-bundle", root / "mix.bundle", home_dir=other)
    hook.stop()
    return runs


def test_every_command_with_json_output_has_a_schema():
    missing = [p for p in documented_commands() if not (SCHEMAS / f"{schema_name(p)}.schema.json").is_file()]
    assert missing == []
    named = {schema_name(p) for p in documented_commands()}
    extra = [
        f.name for f in SCHEMAS.glob("*.schema.json") if f.name.removesuffix(".schema.json") not in named
    ]
    assert extra == []  # no schema for a command that no longer exists


@pytest.mark.parametrize("path", documented_commands(), ids=" ".join)
def test_real_output_matches_the_schema(outputs, path):
    import jsonschema

    schema = json.loads((SCHEMAS / f"{schema_name(path)}.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    runs = outputs.get(path) or next(
        (v for p, v in outputs.items() if schema_name(p) == schema_name(path)), None
    )
    assert runs, f"{' '.join(path)} was not run"
    for stdout, stderr in runs:
        jsonschema.validate(json.loads(stdout), schema, cls=jsonschema.Draft202012Validator)
        for line in stderr.splitlines():  # progress and warnings: JSON lines only
            if line.strip():
                assert isinstance(json.loads(line), dict), line


def test_numbers_are_numbers_and_collections_are_lists(outputs):
    [(out, _)] = outputs[("vector", "list")]
    rows = json.loads(out)
    assert all(isinstance(r["norm"], float) and r["norm"] > 0 for r in rows)
    [(out, _)] = outputs[("recipe", "list")]
    [mix] = json.loads(out)
    assert mix["aliases"] == ["prod"]
    assert [(t["vector"], t["weight"]) for t in mix["terms"]] == [("helpful@v1", 1.0), ("verbose@v1", 0.5)]


def test_schemas_reject_the_old_shapes():
    """The schemas would have caught what issue 27 found: a norm as text, terms as one string."""
    import jsonschema

    vectors = json.loads((SCHEMAS / "vector-list.schema.json").read_text())
    row = {
        "ref": "a@v1", "name": "a", "version": 1, "base": "tiny", "status": "draft", "digest": "0" * 64,
        "param_count": 10, "norm": 0.1116, "stored_bytes": 40, "bytes_per_param": 4.0,
        "created_at": "2026-11-29T08:00:00Z",
    }  # fmt: skip
    jsonschema.validate([row], vectors)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate([{**row, "norm": "0.1116"}], vectors)
    recipes = json.loads((SCHEMAS / "recipe-list.schema.json").read_text())
    recipe = {
        "ref": "m@v1", "name": "m", "version": 1, "base": "tiny", "method": "linear", "parameters": {},
        "dtype": "float32", "status": "approved", "content_digest": "0" * 64,
        "terms": [{"vector": "helpful@v1", "weight": 1.0, "digest": "0" * 64, "status": "approved"}],
        "aliases": ["prod"], "deprecated_vectors": [], "created_at": "2026-11-29T08:00:00Z",
    }  # fmt: skip
    jsonschema.validate([recipe], recipes)
    for old in ({"terms": "+1·helpful@v1"}, {"aliases": "prod"}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate([{**recipe, **old}], recipes)

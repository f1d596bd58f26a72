"""The command line: fast help, JSON on read commands, and the main flow end to end."""

from __future__ import annotations

import json
import subprocess
import sys

import yaml


def test_help_does_not_import_heavy_modules():
    code = (
        "import sys\nfrom registry.cli import main\n"
        "try:\n    main(['--help'], prog_name='registry')\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('torch', 'transformers', 'trl', 'zarr', 'sqlalchemy', 'numpy') if m in sys.modules]\n"
        "print('HEAVY=' + ','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "Usage: registry" in out
    assert out.strip().splitlines()[-1] == "HEAVY="


def test_main_flow_with_json(home, cli, models, tmp_path):
    assert cli("init")[0] == 0
    code, out, _ = cli("--json", "base", "add", "tiny", models["base"])
    base = json.loads(out)
    assert code == 0 and base["architecture"] == "LlamaForCausalLM" and base["dtype"] == "bfloat16"
    code, out, _ = cli(
        "--json", "vector", "import", "helpful", "--base", "tiny", "--positive", models["plus"]
    )
    v = json.loads(out)
    assert code == 0 and v["ref"] == "helpful@v1" and 0.5 < v["bytes_per_param"] < 2
    code, out, _ = cli(
        "--json", "vector", "import", "helpful", "--base", "tiny", "--positive", models["plus2"]
    )
    assert json.loads(out)["ref"] == "helpful@v2"
    listed = json.loads(cli("--json", "vector", "list", "--base", "tiny")[1])
    assert [r["ref"] for r in listed] == ["helpful@v1", "helpful@v2"]
    shown = json.loads(cli("--json", "vector", "show", "helpful@v1")[1])
    assert shown["lineage"]["kind"] == "import"
    assert shown["lineage"]["sources"]["negative"] == {"base": "tiny", "digest": base["digest"]}
    assert shown["lineage"]["params"]["lossless"] is True
    assert len(shown["tensors"]) == 21

    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        yaml.safe_dump({"name": "r", "base": "tiny", "terms": [{"vector": "helpful@v1", "weight": 0.5}]})
    )
    assert json.loads(cli("--json", "recipe", "add", recipe)[1])["created"] is True
    assert json.loads(cli("--json", "recipe", "add", recipe)[1])["created"] is False
    assert cli("recipe", "alias", "r@v1", "prod", "--force")[1].strip() == "r@prod -> r@v1"
    shown = json.loads(cli("--json", "recipe", "show", "r@prod")[1])
    assert (
        shown["ref"] == "r@v1"
        and shown["aliases"] == ["prod"]
        and shown["terms"][0]["vector"] == "helpful@v1"
    )
    code, out, _ = cli("--json", "materialize", "r@prod", "--out", tmp_path / "m")
    mat = json.loads(out)
    assert code == 0 and mat["recipe"] == "r@v1" and (tmp_path / "m" / "model.safetensors").exists()
    lock = json.loads((tmp_path / "m" / "registry-lock.json").read_text())
    assert lock["output_digest"]
    code, out, _ = cli("--json", "verify")
    assert code == 0 and json.loads(out) == {"ok": True, "problems": [], "orphans": []}
    assert "tiny" in cli("base", "list")[1] and "r@v1" in cli("recipe", "list")[1]
    assert json.loads(cli("--json", "plugins", "list")[1]) is not None
    assert cli("db", "upgrade")[0] == 0


def test_verify_names_the_corrupted_array(loaded, cli):
    v = loaded.vector("helpful")
    chunk = loaded.store.path / "data" / v.store_key / "model.layers.0.mlp.down_proj.weight" / "c.0.0"
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0x01
    chunk.write_bytes(data)
    code, out, err = cli("verify")
    assert code == 1
    assert "vector helpful@v1 (base tiny): array model.layers.0.mlp.down_proj.weight" in out
    assert "harmless" not in out
    assert err.strip() == "Error: verify found 1 problem(s)"


def test_verify_hashes_in_parallel_but_reports_in_row_order(loaded):
    """Arrays are hashed on a pool; problems and progress still follow the database's rows."""
    damaged = []
    for ref, count in (("helpful", 1), ("harmless", 2)):
        v = loaded.vector(ref)
        for t in [t for t in v.tensors if len(t.shape) == 2][-count:]:  # late rows finish late
            chunk = loaded.store.path / "data" / v.store_key / t.name / "c.0.0"
            data = bytearray(chunk.read_bytes())
            data[len(data) // 2] ^= 0x01
            chunk.write_bytes(data)
            damaged.append(
                f"vector {ref}@v1 (base tiny): array {t.name}: cannot be read (chunk 0: crc32c mismatch"
            )
    seen: list[str] = []
    problems = loaded.verify(on_item=seen.append)
    assert [p[: len(d)] for p, d in zip(problems, damaged, strict=True)] == damaged
    assert seen == [
        "database",
        "base tiny",
        "vector helpful@v1 (base tiny)",
        "vector harmless@v1 (base tiny)",
    ]


def test_commands_without_registry_fail_cleanly(home, cli):
    code, _, err = cli("vector", "list")
    assert code != 0 and err.strip().startswith("Error: no registry at") and "registry init" in err


def test_init_twice_is_refused(home, cli):
    assert cli("init")[0] == 0
    code, _, err = cli("init")
    assert code != 0 and "a registry already exists" in err


def test_fast_listings_match_the_orm_views(loaded):
    from registry.db import listings as catalog
    from registry.db.as_json import base_view, vector_view

    assert catalog.vector_rows(loaded.config) == [vector_view(v) for v in loaded.vectors()]
    assert catalog.vector_rows(loaded.config, "tiny") == [vector_view(v) for v in loaded.vectors("tiny")]
    assert catalog.vector_rows(loaded.config, "nosuch") == []
    assert catalog.base_rows(loaded.config) == [base_view(b) for b in loaded.bases()]

"""The trust chain, attacked: hostile bundles, lost data, lifecycle and governance rules, secrets.

Every hostile bundle must be refused (or its approval downgraded), with the victim folder
intact and nothing of it visible in the target registry afterwards.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from registry.errors import (
    GovernanceRefused,
    IncompatibleWeights,
    IntegrityError,
    InvalidRecipe,
    NotApproved,
    RegistryError,
    SchemaMismatch,
)
from registry.governance.policy import set_policy

MIX = {
    "name": "mix",
    "base": "tiny",
    "terms": [{"vector": "helpful", "weight": 1.0}, {"vector": "harmless", "weight": -0.5}],
}


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


@pytest.fixture
def source(home, models):
    from registry import Registry

    r = Registry.init(home)
    r.add_base("tiny", str(models["base"]))
    r.import_vector("helpful", "tiny", models["plus"])
    r.import_vector("harmless", "tiny", models["plus2"], models["minus"])
    r.add_recipe(MIX)
    yield r
    r.close()


@pytest.fixture
def bundle(source, tmp_path):
    from registry.exchange.bundle import export_bundle

    path = tmp_path / "release.tar"
    export_bundle(source, ["mix"], path)
    return path


@pytest.fixture
def target(tmp_path, models):
    from registry import Registry

    r = Registry.init(tmp_path / "target")
    r.add_base("tiny", str(models["base"]))
    yield r
    r.close()


@pytest.fixture
def victim(tmp_path) -> Path:
    v = tmp_path / "victim"
    (v / "zarr.json").parent.mkdir()
    (v / "precious.txt").write_text("do not touch")
    return v


def rewrite(src: Path, dst: Path, manifest=None, drop=lambda name: False, swap=None, add=()) -> Path:
    """A copy of a bundle with its manifest edited, members dropped or swapped, members added."""
    with tarfile.open(src) as tin, tarfile.open(dst, "w") as tout:
        members = {m.name: m for m in tin.getmembers()}
        for m in tin.getmembers():
            if drop(m.name):
                continue
            data = tin.extractfile(m).read()
            if m.name == "manifest.json" and manifest is not None:
                doc = json.loads(data)
                manifest(doc)
                data = json.dumps(doc).encode()
            if swap is not None and m.name.startswith(swap[0] + "/"):
                other = swap[1] + m.name[len(swap[0]) :]
                data = tin.extractfile(members[other]).read() if other in members else data
            info = tarfile.TarInfo(m.name)
            info.size = len(data)
            tout.addfile(info, io.BytesIO(data))
        for info in add:
            tout.addfile(info)
    return dst


def assert_nothing_visible(target, victim: Path) -> None:
    assert target.vectors() == [] and target.recipes() == [] and target.store.group_keys() == []
    assert (victim / "precious.txt").read_text() == "do not touch"
    scratch = target.home / ".scratch"
    assert not scratch.exists() or list(scratch.iterdir()) == []


def _set(path: list, value):
    def edit(doc):
        obj = doc
        for k in path[:-1]:
            obj = obj[k]
        obj[path[-1]] = value

    return edit


HOSTILE = {
    "dotdot path": (dict(manifest=_set(["vectors", 0, "data"], "../../victim")), "leaves the bundle"),
    "absolute path": (dict(manifest=_set(["vectors", 0, "data"], "VICTIM")), "leaves the bundle"),
    "edited recipe weight": (
        dict(manifest=_set(["recipes", 0, "terms", 0, "weight"], 3.0)),
        "content digest does not match",
    ),
    "edited method param": (
        dict(manifest=_set(["recipes", 0, "parameters"], {"density": 2})),
        "bundle recipe mix@v1",
    ),
    "swapped vector data, old digest": (dict(swap=("vectors/0", "vectors/1")), "sha256 mismatch"),
    "missing array": (
        dict(drop=lambda n: n.startswith("vectors/0/model.layers.0.mlp.up_proj.weight")),
        "model.layers.0.mlp.up_proj.weight missing",
    ),
    "missing manifest key": (dict(manifest=lambda d: d["vectors"][0].pop("tensors")), "malformed bundle"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_bundles_are_refused(case, bundle, target, victim, tmp_path):
    from registry.exchange.bundle import import_bundle

    spec, message = HOSTILE[case]
    if spec.get("manifest") is not None and case == "absolute path":
        spec = dict(manifest=_set(["vectors", 0, "data"], str(victim)))
    hostile = rewrite(bundle, tmp_path / "hostile.tar", **spec)
    with pytest.raises(RegistryError, match=message):
        import_bundle(target, hostile)
    assert_nothing_visible(target, victim)


@pytest.mark.parametrize("where", ["outside", "inside"])
def test_bundle_links_are_refused(where, bundle, target, victim, tmp_path):
    from registry.exchange.bundle import import_bundle

    link = tarfile.TarInfo("vectors/link")
    link.type = tarfile.SYMTYPE
    link.linkname = str(victim) if where == "outside" else "0"
    edit = _set(["vectors", 0, "data"], "vectors/link")
    hostile = rewrite(bundle, tmp_path / "links.tar", manifest=edit, add=[link])
    with pytest.raises(RegistryError, match="link"):
        import_bundle(target, hostile)
    assert_nothing_visible(target, victim)


def test_truncated_bundle_is_one_line(bundle, target, victim, tmp_path, cli, monkeypatch):
    cut = tmp_path / "cut.tar"
    cut.write_bytes(bundle.read_bytes()[: bundle.stat().st_size // 2])
    monkeypatch.setenv("REGISTRY_HOME", str(target.home))
    code, out, err = cli("import-bundle", cut)
    assert code != 0 and out == "" and len(err.strip().splitlines()) == 1
    # cut inside a member: tarfile says so; cut at a member boundary: the manifest's data is absent
    assert "not a registry bundle" in err or "is not a folder inside the bundle" in err
    assert_nothing_visible(target, victim)


def test_flipped_status_lands_as_draft(bundle, target, tmp_path):
    from registry.exchange.bundle import import_bundle

    def flip(doc):
        for e in [*doc["vectors"], *doc["recipes"]]:
            e["status"] = "approved"

    import_bundle(target, rewrite(bundle, tmp_path / "flipped.tar", manifest=flip))
    r = target.recipe("mix@v1")
    assert r.status == "draft" and "the bundle said approved" in r.status_reason
    assert {v.status for v in target.vectors()} == {"draft"}
    events = [e for e in target.log() if e.action == "recipe.import-bundle"]
    assert events[0].details["source_status"] == "approved"
    with pytest.raises(NotApproved):
        target.materialize("mix@v1", tmp_path / "out", require_approved=True)
    assert not (tmp_path / "out").exists()


def test_signed_release_end_to_end(source, target, tmp_path, cli):
    from registry.exchange.bundle import export_bundle, import_bundle

    priv, pub = ec_keys(tmp_path)
    for v in ("helpful", "harmless"):
        source.approve(v, "reviewed", kind="vector")
    source.approve("mix@v1", "evals passed", sign_key=priv)
    path = tmp_path / "signed.tar"
    export_bundle(source, ["mix"], path)

    # a registry that does not trust the key: the approval does not survive
    from registry import Registry

    other = Registry.init(tmp_path / "untrusting")
    other.add_base("tiny", source.base("tiny").path)
    import_bundle(other, path)
    assert other.recipe("mix@v1").status == "draft"

    target.trust(pub)
    assert import_bundle(target, path)["recipes"] == ["mix@v1"]
    assert target.recipe("mix@v1").status == "approved"
    assert {v.status for v in target.vectors()} == {"approved"}  # covered by the recipe signature
    out = tmp_path / "release"
    target.materialize("mix@v1", out, require_approved=True, sign_key=priv)
    sig = tmp_path / "release.sig"
    check = [sys.executable, "-m", "model_signing", "verify", "key", "--signature", str(sig)]
    check += ["--public_key", str(pub), str(out)]
    assert subprocess.run(check, capture_output=True).returncode == 0
    (out / "config.json").write_text("{}")
    assert subprocess.run(check, capture_output=True).returncode != 0

    # a signature over other content does not carry over to an edited status or digest
    def forge(doc):
        doc["recipes"][0]["terms"][0]["weight"] = 9.0

    with pytest.raises(IntegrityError, match="content digest"):
        forged = rewrite(path, tmp_path / "forged.tar", manifest=forge)
        import_bundle(Registry.init(tmp_path / "t3"), forged, {"tiny": source.base("tiny").path})


# -- missing data is refused, never zeros or base values -----------------------------------
def _array_dir(reg, ref: str, tensor: str) -> Path:
    return reg.store.path / "data" / reg.vector(ref).store_key / tensor


@pytest.mark.parametrize("loss", ["chunk", "array"])
def test_missing_data_is_refused_everywhere(loss, source, tmp_path):
    import shutil

    tensor = "model.layers.0.mlp.up_proj.weight"
    d = _array_dir(source, "helpful", tensor)
    if loss == "chunk":
        (d / "c.0.0").unlink()
        message = f"array {tensor} is missing chunk 0"
    else:
        shutil.rmtree(d)
        message = f"array {tensor} missing from the store"
    with pytest.raises(IntegrityError, match=message):
        source.materialize("mix", tmp_path / "out")
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out*"))
    with pytest.raises(IntegrityError, match=message):
        source.interference("tiny")
    if loss == "chunk":  # sweeps evaluate this merged state
        with pytest.raises(IntegrityError, match=message):
            source.merged_state("tiny", [("helpful", 1.0)])
    assert any(tensor in p for p in source.verify())


def test_changed_array_bytes_fail_the_streaming_check(source, tmp_path):
    import google_crc32c

    from registry.storage import codec

    tensor = "model.layers.0.mlp.up_proj.weight"
    chunk = _array_dir(source, "helpful", tensor) / "c.0.0"
    raw = chunk.read_bytes()
    values = codec.decode(raw[:-4]).copy()
    values[0] += 1.0  # a well-formed chunk with other values: only the sha256 can tell
    body = codec.encode(values)
    chunk.write_bytes(body + google_crc32c.value(body).to_bytes(4, "little"))
    with pytest.raises(IntegrityError, match=f"array {tensor} sha256 mismatch"):
        source.materialize("mix", tmp_path / "out")
    assert not (tmp_path / "out").exists()


# -- lifecycle -------------------------------------------------------------------------------
def test_lifecycle_rules(source, models, tmp_path):
    source.import_vector("helpful", "tiny", models["plus2"])  # helpful@v2
    source.deprecate("helpful@v2", "bad data", kind="vector")
    assert source.vector("helpful").ref == "helpful@v1"  # newest non-deprecated
    spec = {"name": "r", "base": "tiny", "terms": [{"vector": "helpful@v2", "weight": 1.0}]}
    with pytest.raises(InvalidRecipe, match="helpful@v2 is deprecated"):
        source.add_recipe(spec)
    r, _ = source.add_recipe(spec, allow_deprecated=True)
    assert r.terms[0].vector.ref == "helpful@v2"
    with pytest.raises(GovernanceRefused, match=r"not approved: helpful@v1 \(draft\), harmless@v1 \(draft\)"):
        source.approve("mix@v1", "ok")
    source.approve("helpful@v1", "ok", kind="vector")
    source.approve("harmless@v1", "ok", kind="vector")
    source.approve("mix@v1", "ok")
    source.materialize("mix@v1", tmp_path / "a", require_approved=True)
    source.deprecate("harmless@v1", "withdrawn", kind="vector")
    with pytest.raises(NotApproved, match="uses vector harmless@v1, which is deprecated"):
        source.materialize("mix@v1", tmp_path / "b", require_approved=True)


# -- four-eyes and protected aliases ---------------------------------------------------------
def test_four_eyes_and_protected_aliases(source, home):
    from registry import Registry

    set_policy(source, "four_eyes", True)  # tester created the registry: its first admin
    set_policy(source, "protected_aliases.prod", ["alice"])
    me = Registry.open(home, actor="tester")  # created everything in `source`
    with pytest.raises(GovernanceRefused, match="four-eyes rule: tester created vector helpful@v1"):
        me.approve("helpful", "mine", kind="vector")
    alice = Registry.open(home, actor="alice")
    for v in ("helpful", "harmless"):
        alice.approve(v, "reviewed", kind="vector")
    alice.approve("mix@v1", "reviewed")
    with pytest.raises(
        GovernanceRefused, match="alias prod is protected: only alice may move it, not tester"
    ):
        me.set_alias("mix@v1", "prod")
    me.set_alias("mix@v1", "staging")
    alice.set_alias("mix@v1", "prod")
    refused = [(e.action, e.object, e.actor) for e in me.log() if e.action.startswith("refused.")]
    assert refused == [
        ("refused.vector.approved", "helpful@v1", "tester"),
        ("refused.recipe.alias", "mix@prod", "tester"),
    ]


# -- edges -----------------------------------------------------------------------------------
def test_unpinned_weight_file_fails_the_pins(tmp_path, models, home):
    import shutil

    from registry import Registry

    folder = tmp_path / "base-copy"
    shutil.copytree(models["base"], folder)
    reg = Registry.init(home)
    reg.add_base("tiny", str(folder))
    reg.import_vector("helpful", "tiny", models["plus"])
    reg.add_recipe({"name": "r", "base": "tiny", "terms": [{"vector": "helpful", "weight": 1.0}]})
    shutil.copyfile(folder / "model.safetensors", folder / "extra.safetensors")
    with pytest.raises(IntegrityError, match=r"extra\.safetensors is an unpinned weight file"):
        reg.materialize("r", tmp_path / "out")
    assert not (tmp_path / "out").exists()


INEXACT = "model.layers.0.mlp.up_proj.weight"


def inexact_pair(models, tmp_path):
    """θ± whose float32 difference in one tensor is not exact."""
    import shutil

    import torch
    from safetensors.torch import load_file, save_file

    pos, neg = tmp_path / "pos", tmp_path / "neg"
    for folder, value in ((pos, 1.0), (neg, 2.0**-30)):
        shutil.copytree(models["base"], folder)
        t = load_file(folder / "model.safetensors")
        t[INEXACT] = torch.full_like(t[INEXACT], value)
        save_file(t, folder / "model.safetensors", metadata={"format": "pt"})
    return pos, neg


def test_inexact_difference_is_refused(sqlite_reg, models, tmp_path):
    name = INEXACT
    pos, neg = inexact_pair(models, tmp_path)
    # float32: 1 - 2^-30 rounds to 1, and 2^-30 + 1 rounds back to 1: m + d == p holds, d is wrong
    with pytest.raises(IncompatibleWeights, match=rf"tensor {name}: θ\+ − θ− is not exact in float32"):
        sqlite_reg.import_vector("x", "tiny", pos, neg, require_lossless=True)
    assert sqlite_reg.vectors() == [] and sqlite_reg.store.group_keys() == []
    v = sqlite_reg.import_vector("x", "tiny", pos, neg)  # recorded truthfully, not refused
    assert v.run.params["lossless"] is False and v.run.params["inexact_tensors"] == [name]
    assert sqlite_reg.import_vector("y", "tiny", models["plus"]).run.params["lossless"] is True


def test_cli_require_lossless(sqlite_reg, models, tmp_path, cli):
    pos, neg = inexact_pair(models, tmp_path)
    args = ("vector", "import", "x", "--base", "tiny", "--positive", pos, "--negative", neg)
    code, out, err = cli(*args, "--require-lossless")
    # progress lines (`import x: 1/21 tensors …`) may come first; the refusal is one line
    lines = [x for x in err.splitlines() if not x.startswith("import x: ")]
    assert code != 0 and out == "" and len(lines) == 1, err
    assert lines[0].startswith("Error: ") and f"tensor {INEXACT}: θ+ − θ− is not exact" in lines[0]
    assert sqlite_reg.store.group_keys() == []
    code, out, err = cli(*args)  # without the flag: stored, and recorded as inexact
    assert code == 0 and out.startswith("imported x@v1 for base tiny"), err
    params = json.loads(cli("--json", "vector", "show", "x@v1")[1])["lineage"]["params"]
    assert params["lossless"] is False and params["inexact_tensors"] == [INEXACT]


def test_log_object_matches_names_exactly(sqlite_reg):
    sqlite_reg.audit_now("note", "a_b@v1")
    sqlite_reg.audit_now("note", "axb@v1")
    sqlite_reg.audit_now("note", "a_b")
    assert [e.object for e in sqlite_reg.log("a_b")] == ["a_b@v1", "a_b"]
    assert [e.object for e in sqlite_reg.log("a%")] == []


def test_stale_run_from_another_host_is_ended_by_gc(sqlite_reg):
    from datetime import timedelta

    from registry.db.models import TrainingRun, utcnow
    from registry.records.runs import finish_run, start_run

    run = start_run(sqlite_reg, "dpo", sqlite_reg.base("tiny"), "v")
    with sqlite_reg.Session.begin() as s:
        row = s.get(TrainingRun, run.id)
        row.sources = {"process": {"host": "crashed-machine", "pid": 1}}
        row.heartbeat_at = utcnow() - timedelta(hours=2)
    fresh = start_run(sqlite_reg, "dpo", sqlite_reg.base("tiny"), "w")
    report = sqlite_reg.gc()
    assert report["interrupted_runs"] == [run.id]
    with sqlite_reg.Session() as s:
        assert s.get(TrainingRun, run.id).status == "failed"
        assert s.get(TrainingRun, fresh.id).status == "running"
    finish_run(sqlite_reg, fresh, "failed", "test over")


def test_bad_safetensors_header_is_one_line(tmp_path, models, cli, home):
    import shutil
    import struct

    from registry import Registry

    Registry.init(home).close()
    folder = tmp_path / "bad"
    shutil.copytree(models["base"], folder)
    header = json.dumps({"w": {"dtype": "F32"}}).encode()
    (folder / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header)
    code, _out, err = cli("base", "add", "bad", folder)
    assert code != 0 and len(err.strip().splitlines()) == 1 and "not a safetensors file" in err


# -- secrets and schema skew, on both backends -----------------------------------------------
@pytest.mark.parametrize("form", ["userinfo", "slash", "query"])
def test_password_never_stored_or_printed(db_url, home, cli, tmp_path, form):
    if db_url.startswith("sqlite"):
        pytest.skip("a SQLite URL carries no password")
    # issue 24.9: redact() split at the first `/` and ignored the query string
    secret = {"userinfo": "s3cr3t-Pa55", "slash": "s3cr/3t-Pa55", "query": "s3cr/3t-Pa55"}[form]
    if form == "query":
        url = db_url + "?password=" + secret
    else:  # a literal `/`: SQLAlchemy reads it as part of the password
        url = db_url.replace("postgres@", f"postgres:{secret}@", 1)
    code, out, err = cli("--json", "init", "--db", url)
    assert code == 0, err
    assert secret not in out and json.loads(out)["db"].count("***") == 1
    assert "s3cr" not in (home / "registry.toml").read_text()
    init_row = json.loads(cli("--json", "log")[1])[0]
    assert init_row["action"] == "init" and "s3cr" not in json.dumps(init_row)
    from registry.config import redact

    unreachable = url.replace("127.0.0.1:5432", "127.0.0.1:1")
    assert "s3cr" not in redact(unreachable) and "***" in redact(unreachable)
    code, out, err = cli("--home", tmp_path / "elsewhere", "init", "--db", unreachable)
    assert code != 0 and "cannot reach database" in err and "s3cr" not in out + err
    assert len(err.strip().splitlines()) == 1
    for args in (("--json", "log"), ("log",), ("vector", "list")):
        code, out, err = cli(*args)
        assert code == 0 and secret not in out + err
    for p in home.rglob("*"):
        if p.is_file():
            assert secret.encode() not in p.read_bytes(), p


def test_schema_skew_both_ways(reg, home, cli):
    from sqlalchemy import text

    from registry import Registry
    from registry.db import engine as dbmod
    from registry.db.revision import SCHEMA_HEAD

    with reg.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(SchemaMismatch, match="has schema 9999, newer than this registry package knows"):
        Registry.open(home)
    code, _, err = cli("vector", "list")
    assert code != 0 and len(err.strip().splitlines()) == 1 and "newer than" in err
    with reg.engine.begin() as conn:
        conn.execute(text(f"UPDATE alembic_version SET version_num = '{SCHEMA_HEAD}'"))
    dbmod.downgrade(reg.engine, "0002")
    if reg.engine.url.get_backend_name() == "sqlite":
        Registry.open(home).close()  # a home's own SQLite file upgrades on open
    else:
        with pytest.raises(SchemaMismatch, match="run `registry db upgrade`"):
            Registry.open(home)
        assert dbmod.current_revision(reg.engine) == "0002"
        code, out, err = cli("db", "upgrade")
        assert code == 0 and f"at revision {SCHEMA_HEAD} (was 0002)" in out, err
    assert dbmod.current_revision(reg.engine) == SCHEMA_HEAD


def test_refused_bundle_leaves_no_base_behind(bundle, tmp_path, models, victim):
    from registry import Registry
    from registry.exchange.bundle import import_bundle

    empty = Registry.init(tmp_path / "empty")
    edited = rewrite(
        bundle, tmp_path / "edited.tar", manifest=_set(["recipes", 0, "terms", 0, "weight"], 7.0)
    )
    with pytest.raises(IntegrityError, match="content digest does not match"):
        import_bundle(empty, edited, {"tiny": str(models["base"])})
    assert empty.bases() == []
    assert_nothing_visible(empty, victim)
    assert import_bundle(empty, bundle, {"tiny": str(models["base"])})["recipes"] == ["mix@v1"]
    assert [b.name for b in empty.bases()] == ["tiny"]


def test_trust_and_signing_on_the_command_line(source, cli, tmp_path):
    priv, pub = ec_keys(tmp_path)
    code, out, err = cli("--json", "trust", "add", pub, "--name", "release")
    assert code == 0, err
    key_id = json.loads(out)["key_id"]
    assert [k["key_id"] for k in json.loads(cli("--json", "trust", "list")[1])] == [key_id]
    assert cli("trust", "add", priv)[0] != 0  # the same key (its public half) is already trusted
    code, _, err = cli("approve", "helpful", "--vector", "--reason", "ok", "--sign-key", priv)
    assert code == 0, err
    event = [
        e
        for e in json.loads(cli("--json", "log", "--object", "helpful")[1])
        if e["action"] == "vector.approved"
    ]
    assert event[0]["details"]["signed_by"] == key_id
    code, _, err = cli("deprecate", "harmless", "--vector", "--reason", "x", "--sign-key", priv)
    assert code == 2 and "No such option '--sign-key'" in err  # deprecate does not offer it

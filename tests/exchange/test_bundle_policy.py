"""Bundles under this registry's rules (issue 31: 6, 7, 8, 10, 15, 16).

A bundle is untrusted input, and the items it brings must meet the same rules as items made
here: a key revoked while an import runs counts for nothing (6), interference and
plausibility are recomputed and judged by this team's policy (7), tune and retention notes
count only under a trusted signature and only as plain text (8), authorship travels and
four-eyes refuses both the author and the importer (10), and malformed tars and manifests
are one line, quickly (15, 16). Races and authorship run on SQLite and PostgreSQL.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file, save_file

from registry.errors import GovernanceRefused, IncompatibleWeights, IntegrityError, InterferenceRefused
from registry.evaluation.results_log import recorded_notes
from registry.exchange.bundle import export_bundle, import_bundle
from registry.governance.policy import set_policy
from registry.governance.revocation import remove_trusted, revoked_ids
from registry.governance.signing import list_trusted
from tests.test_security import MIX, ec_keys, rewrite
from tests.threads import in_thread

TUNE = {"from": "mix@v0", "metric": "verbose_margin", "target": 5.0, "eta": 1.5, "value": 5.01}


# -- helpers ----------------------------------------------------------------------------
def new_registry(path: Path, models, actor: str = "tester"):
    from registry import Registry

    r = Registry.init(path)
    r.actor = actor
    r.add_base("tiny", str(models["base"]))
    return r


@pytest.fixture
def signed(tmp_path, models):
    """A bundle of mix@v1 (approved and signed) with both vectors, and the signer's public key."""
    src = new_registry(tmp_path / "source", models)
    src.import_vector("helpful", "tiny", models["plus"])
    src.import_vector("harmless", "tiny", models["plus2"], models["minus"])
    src.add_recipe(MIX)
    priv, pub = ec_keys(tmp_path)
    for v in ("helpful", "harmless"):
        src.approve(v, "reviewed", kind="vector")
    src.approve("mix@v1", "evals passed", sign_key=priv)
    path = export_bundle(src, ["mix"], tmp_path / "release.tar")["out"]
    src.close()
    return Path(path), pub


def statuses(reg) -> dict[str, str]:
    return {
        **{f"vector {v.ref}": v.status for v in reg.vectors()},
        **{f"recipe {r.ref}": r.status for r in reg.recipes()},
    }


# -- 6: a key revoked during an import ---------------------------------------------------
def test_trust_remove_before_the_import_writes_leaves_its_items_draft(reg, models, signed, hold):
    """The import checked the signatures, then `trust remove` committed, then the import wrote:
    its items used to land approved under a revoked key."""
    from registry import Registry

    path, pub = signed
    reg.add_base("tiny", str(models["base"]))
    kid = reg.trust(pub).key_id
    reached, release = hold("import:before-write")
    t, result = in_thread(lambda: import_bundle(reg, path))
    assert reached.wait(60), "the import never paused between its signature checks and its write"
    with Registry.open(reg.home) as other:
        assert remove_trusted(other, kid, "leaked")["demoted"] == []  # nothing approved yet
    release.set()
    t.join(120)
    assert "error" not in result, result.get("error")
    assert {(i["ref"], i["status"]) for i in result["value"]["items"]} == {
        ("helpful@v1", "draft"),
        ("harmless@v1", "draft"),
        ("mix@v1", "draft"),
    }
    assert all("revoked during the import" in i["reason"] for i in result["value"]["items"])
    assert set(statuses(reg).values()) == {"draft"}
    assert list_trusted(reg) == [] and revoked_ids(reg) == {kid}


def test_trust_remove_during_the_import_transaction_waits_and_demotes(reg, models, signed, hold):
    """`trust remove` while the import holds the key's row: it waits for the import's commit,
    then finds and demotes everything that rested on the key."""
    from registry import Registry

    path, pub = signed
    reg.add_base("tiny", str(models["base"]))
    kid = reg.trust(pub).key_id
    reached, release = hold("import:keys-locked")
    t, result = in_thread(lambda: import_bundle(reg, path))
    assert reached.wait(60), "the import never paused inside its write transaction"
    other = Registry.open(reg.home)
    t2, removed = in_thread(lambda: remove_trusted(other, kid, "leaked"))
    time.sleep(1.5)
    assert t2.is_alive(), "trust remove did not wait for the import that holds the key"
    release.set()
    t.join(120)
    t2.join(120)
    other.close()
    assert "error" not in result, result.get("error")
    assert "error" not in removed, removed.get("error")
    assert {(i["ref"], i["status"]) for i in result["value"]["items"]} == {
        ("helpful@v1", "approved"),
        ("harmless@v1", "approved"),
        ("mix@v1", "approved"),
    }  # what the import wrote; then the revocation, which saw it, took it back
    assert sorted(removed["value"]["demoted"]) == ["recipe mix@v1", "vector harmless@v1", "vector helpful@v1"]
    assert set(statuses(reg).values()) == {"draft"}


# -- 7: interference and plausibility -----------------------------------------------------
def scaled(base: Path, out: Path, factor: float) -> Path:
    """θ = factor·θbase: φ = θ − θbase is (factor − 1)·θbase, far from any fine-tune."""
    out.mkdir()
    for f in base.iterdir():
        if f.suffix != ".safetensors":
            (out / f.name).write_bytes(f.read_bytes())
    for f in base.glob("*.safetensors"):
        tensors = load_file(f)
        save_file(
            {k: (t.float() * factor).to(t.dtype) if t.is_floating_point() else t for k, t in tensors.items()},
            out / f.name,
            metadata={"format": "pt"},
        )
    return out


@pytest.fixture
def policy_bundles(tmp_path, models):
    """From another registry: `clone` (φ of helpful exactly, with a forged report claiming
    cosine 0.02) and `big` (φ = 2·θbase)."""
    src = new_registry(tmp_path / "source", models)
    src.import_vector("clone", "tiny", models["plus"])
    out = {"triple": scaled(models["base"], tmp_path / "triple", 3.0)}
    src.import_vector("big", "tiny", out["triple"])
    for name in ("clone", "big"):
        export_bundle(src, [name], tmp_path / f"{name}.plain.tar")

        def forge(doc):
            doc["vectors"][0]["interference"] = {
                "cosines": {"helpful@v1": {"global": 0.02}},
                "max_abs_cosine": 0.02,
                "most_similar": "helpful@v1",
                "plausibility": {"relative_norm": 0.01},
            }

        out[name] = rewrite(tmp_path / f"{name}.plain.tar", tmp_path / f"{name}.tar", manifest=forge)
    src.close()
    return out


def test_bundles_meet_the_interference_and_norm_policy_of_vector_import(sqlite_reg, models, policy_bundles):
    from registry import Registry

    sqlite_reg.import_vector("helpful", "tiny", models["plus"])
    set_policy(sqlite_reg, "interference_policy", "refuse")
    reg = Registry.open(sqlite_reg.home)
    # the reference: what `vector import` refuses under this policy
    with pytest.raises(InterferenceRefused, match="interferes with helpful@v1"):
        reg.import_vector("clone", "tiny", models["plus"])
    with pytest.raises(IncompatibleWeights, match="φ's norm is"):
        reg.import_vector("big", "tiny", policy_bundles["triple"])
    with pytest.raises(InterferenceRefused, match=r"interferes with helpful@v1: .*\(policy: refuse\)"):
        import_bundle(reg, policy_bundles["clone"])
    with pytest.raises(IncompatibleWeights, match=r"φ's norm is [\d.]+× the base's .*\(policy: refuse\)"):
        import_bundle(reg, policy_bundles["big"])
    assert [v.ref for v in reg.vectors()] == ["helpful@v1"]
    assert len(reg.store.group_keys()) == 1  # the refused bundles' data was removed

    # under `warn` they land, with the report computed here, never the bundle's 0.02
    set_policy(reg, "interference_policy", "warn")
    import_bundle(reg, policy_bundles["clone"])
    import_bundle(reg, policy_bundles["big"])
    clone = reg.vector("clone").interference
    assert clone["cosines"]["helpful@v1"]["global"] == pytest.approx(1.0, abs=1e-6)  # the same φ
    assert clone["max_abs_cosine"] == pytest.approx(1.0, abs=1e-6) and "interferes with" in clone["warning"]
    big = reg.vector("big").interference["plausibility"]
    assert big["relative_norm"] == pytest.approx(2.0, rel=2e-2) and "norm is" in big["warning"]
    reg.close()


# -- 8: notes ------------------------------------------------------------------------------
HOSTILE_NOTE = {
    "action": "recipe.retention",
    "details": {"passed": True, "drift_pct": 0.0, "<img src=x onerror=alert(1)>": "ok"},
    "actor": "lead",
    "at": "2026-01-01T00:00:00Z",
}


def test_unsigned_notes_land_unverified_and_never_reach_a_card_or_lock(source, target, tmp_path):
    source.audit_now("recipe.tune", "mix@v1", TUNE)
    export_bundle(source, ["mix"], tmp_path / "mix.tar")

    def forge(doc):
        doc["recipes"][0]["notes"].append(HOSTILE_NOTE)

    report = import_bundle(target, rewrite(tmp_path / "mix.tar", tmp_path / "forged.tar", manifest=forge))
    assert (report["notes"], report["unverified_notes"]) == (0, 2)
    assert recorded_notes(target, "mix@v1") == {}  # nothing a card or lock reads
    kept = [e.details for e in target.log("mix@v1") if e.action == "recipe.unverified-note"]
    assert [(d["action"], d["source_actor"]) for d in kept] == [
        ("recipe.tune", "tester"),
        ("recipe.retention", "lead"),
    ]
    assert all("carry no signature" in d["reason"] for d in kept)
    target.materialize("mix@v1", tmp_path / "out")
    card = (tmp_path / "out" / "README.md").read_text()
    assert "<img" not in card and "preference_notes" not in card and "verbose_margin" not in card
    assert "notes" not in json.loads((tmp_path / "out" / "registry-lock.json").read_text())


def test_signed_notes_count_only_as_plain_text(source, target, tmp_path):
    from registry.exchange.bundle_notes import sign_notes

    priv, pub = ec_keys(tmp_path)
    target.trust(pub)
    source.audit_now("recipe.tune", "mix@v1", TUNE)
    export_bundle(source, ["mix"], tmp_path / "signed.tar", sign_key=priv)

    def hostile(doc):  # a trusted signer that signs hostile text: the card must still not take it
        entry = doc["recipes"][0]
        entry["notes"].append(HOSTILE_NOTE)
        entry["notes_signatures"] = sign_notes(source, entry, str(priv))

    def tampered(doc):  # notes changed after signing: the signature no longer covers them
        doc["recipes"][0]["notes"][0]["details"]["eta"] = 9.0

    bad = import_bundle(target, rewrite(tmp_path / "signed.tar", tmp_path / "h.tar", manifest=hostile))
    assert (bad["notes"], bad["unverified_notes"]) == (0, 2)
    reasons = {e.details["reason"] for e in target.log("mix@v1") if e.action == "recipe.unverified-note"}
    assert reasons == {
        "a recipe.retention note has a key '<img src=x onerror=alert(1)>' that is not a plain word"
    }
    assert recorded_notes(target, "mix@v1") == {}
    assert (
        import_bundle(target, rewrite(tmp_path / "signed.tar", tmp_path / "t.tar", manifest=tampered))[
            "notes"
        ]
        == 0
    )
    good = import_bundle(target, tmp_path / "signed.tar")
    assert good["notes"] == 1 and recorded_notes(target, "mix@v1") == {"tune": TUNE}


# -- 10: authorship ------------------------------------------------------------------------
def test_import_keeps_the_author_and_four_eyes_refuses_author_and_importer(reg, models, tmp_path):
    from registry import Registry

    sandbox = new_registry(tmp_path / "sandbox", models, actor="bob")
    sandbox.import_vector("helpful", "tiny", models["plus"])
    sandbox.add_recipe({"name": "solo", "base": "tiny", "terms": [{"vector": "helpful", "weight": 1.0}]})
    export_bundle(sandbox, ["solo"], tmp_path / "solo.tar")
    sandbox.close()

    reg.add_base("tiny", str(models["base"]))
    set_policy(reg, "four_eyes", True)  # tester created the registry: its first admin
    with Registry.open(reg.home, actor="alice") as alice:
        import_bundle(alice, tmp_path / "solo.tar")
    v, r = reg.vector("helpful@v1"), reg.recipe("solo@v1")
    assert (v.created_by, v.imported_by, r.created_by, r.imported_by) == ("bob", "alice", "bob", "alice")
    for who, said in (("bob", "bob created"), ("alice", "alice imported")):
        with (
            Registry.open(reg.home, actor=who) as r_,
            pytest.raises(GovernanceRefused, match=f"{said} vector"),
        ):
            r_.approve("helpful@v1", "mine", kind="vector")
    with Registry.open(reg.home, actor="carol") as carol:
        carol.approve("helpful@v1", "reviewed", kind="vector")
    for who, said in (("bob", "bob created"), ("alice", "alice imported")):
        with (
            Registry.open(reg.home, actor=who) as r_,
            pytest.raises(GovernanceRefused, match=f"{said} recipe"),
        ):
            r_.approve("solo@v1", "mine")
    with Registry.open(reg.home, actor="carol") as carol:
        assert carol.approve("solo@v1", "reviewed").status == "approved"


# -- 15: CVE-2024-6232 ---------------------------------------------------------------------
def pax_bomb(path: Path, size: int = 143_000) -> Path:
    """A tar whose first header is a pax extended header of `size` digits (Python 3.11.7's
    header regexes backtrack over them in quadratic time), then a manifest."""
    pax = tarfile.TarInfo("././@PaxHeader")
    pax.type, pax.size = tarfile.XHDTYPE, size
    payload = b"1" * size
    manifest = b'{"format": 1, "bases": [], "vectors": [], "recipes": []}'
    member = tarfile.TarInfo("manifest.json")
    member.size = len(manifest)
    with path.open("wb") as f:
        f.write(pax.tobuf(tarfile.USTAR_FORMAT))
        f.write(payload + b"\0" * (-size % 512))
        f.write(member.tobuf(tarfile.USTAR_FORMAT))
        f.write(manifest + b"\0" * (-len(manifest) % 512))
        f.write(b"\0" * 1024)
    return path


def test_an_oversized_pax_header_is_refused_before_tarfile_parses_it(tmp_path):
    bomb = pax_bomb(tmp_path / "bomb.tar")
    script = "import sys; from registry.exchange.archive import Archive; Archive(__import__('pathlib').Path(sys.argv[1]))"
    t0 = time.monotonic()
    try:
        proc = subprocess.run(
            [sys.executable, "-c", script, str(bomb)], capture_output=True, text=True, timeout=60
        )
    except subprocess.TimeoutExpired:
        pytest.fail("parsing a 143 KB pax header took more than 60 s (CVE-2024-6232)")
    assert proc.returncode != 0 and time.monotonic() - t0 < 30
    assert (
        "bundle holds a 143000-byte extended header, more than 8192; refused before parsing it" in proc.stderr
    )


def test_an_ordinary_pax_header_still_reads(tmp_path):
    """Long names make tarfile write pax headers of its own: those stay readable."""
    from registry.exchange.archive import Archive

    path = tmp_path / "long.tar"
    data = b"{}"
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("manifest.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        info = tarfile.TarInfo("vectors/0/" + "é" * 120)  # non-ASCII and long: a pax path record
        info.size = 0
        tar.addfile(info, io.BytesIO(b""))
    with Archive(path) as arc:
        assert [m.name for m in arc.members] == ["manifest.json", "vectors/0/" + "é" * 120]


# -- 16: malformed data --------------------------------------------------------------------
def test_a_deeply_nested_manifest_is_one_line(bundle, target, tmp_path, cli, monkeypatch):
    deep = ("[" * 100_000 + "]" * 100_000).encode()
    bad = tmp_path / "deep.tar"
    with tarfile.open(bad, "w") as tar:
        info = tarfile.TarInfo("manifest.json")
        info.size = len(deep)
        tar.addfile(info, io.BytesIO(deep))
    monkeypatch.setenv("REGISTRY_HOME", str(target.home))
    code, out, err = cli("import-bundle", bad)
    assert code != 0 and out == "" and len(err.strip().splitlines()) == 1
    assert "nested more than 64 levels deep" in err


def test_a_deeply_nested_zarr_json_in_a_bundle_is_one_line(bundle, target, tmp_path):
    with tarfile.open(bundle) as tar:
        meta = next(
            m.name for m in tar.getmembers() if m.name.count("/") == 3 and m.name.endswith("zarr.json")
        )
    deep = tmp_path / "deep"
    deep.write_bytes(b"[" * 30000 + b"]" * 30000)  # within the 64 KiB a zarr.json may take
    bad = tmp_path / "bad.tar"
    with tarfile.open(bundle) as tin, tarfile.open(bad, "w") as tout:
        for m in tin.getmembers():
            data = deep.read_bytes() if m.name == meta else tin.extractfile(m).read()
            info = tarfile.TarInfo(m.name)
            info.size = len(data)
            tout.addfile(info, io.BytesIO(data))
    with pytest.raises(IntegrityError, match="nested more than 64 levels deep") as e:
        import_bundle(target, bad)
    assert "\n" not in str(e.value) and target.vectors() == []


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("seed", 2**70, "lineage seed '1180591620717411303424' is not a whole number"),
        ("dataset_size", -(2**40), "lineage dataset_size '-1099511627776' is not a whole number"),
        ("plugin", "p" * 300, "lineage plugin is not text of at most 128 characters"),
    ],
)
def test_lineage_beyond_its_columns_is_one_line(bundle, target, tmp_path, field, value, message):
    def forge(doc):
        doc["vectors"][0]["lineage"][field] = value

    with pytest.raises(IntegrityError, match=message) as e:
        import_bundle(target, rewrite(bundle, tmp_path / "bad.tar", manifest=forge))
    assert "\n" not in str(e.value) and target.vectors() == []


def test_a_string_cosine_in_a_bundle_report_never_lands(bundle, target, tmp_path, cli, monkeypatch):
    def forge(doc):
        for v in doc["vectors"]:
            v["interference"] = {"cosines": {"x@v1": {"global": "evil"}}, "max_abs_cosine": "evil"}

    import_bundle(target, rewrite(bundle, tmp_path / "bad.tar", manifest=forge))
    harmless = target.vector("harmless@v1").interference
    assert "x@v1" not in harmless["cosines"] and set(harmless["cosines"]) == {"helpful@v1"}
    assert isinstance(harmless["cosines"]["helpful@v1"]["global"], float)
    assert isinstance(harmless["max_abs_cosine"], float)
    monkeypatch.setenv("REGISTRY_HOME", str(target.home))
    code, out, err = cli("--json", "vector", "show", "harmless@v1")
    assert code == 0, err
    assert (
        json.loads(out)["interference"]["cosines"]["helpful@v1"]["global"]
        == harmless["cosines"]["helpful@v1"]["global"]
    )
